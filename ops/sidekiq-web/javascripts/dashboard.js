// Our own dashboard.js for the Sidekiq Web UI 6.4, 7.x and 8.x, written for this project
// (Debian's ruby-sidekiq ships none; config.ru serves this one where the gem lacks it).
//
// Every version: the polling-interval slider (#sldr) stores its value where the realtime
// chart and live polling read it and announces it with an "interval:update" event.
// 6.4 only (its Rickshaw charts are not packaged): draws the realtime chart (#realtime, the
// processed/failed deltas of each /stats poll) and the history chart (#history, the daily
// counts in its data attributes) as inline SVG, and keeps the summary bar and the Redis
// panel current. 7.x/8.x draw their charts with their own dashboard-charts.js and Chart.js.
"use strict";

(function () {
  var INTERVAL_KEY = "sidekiqTimeInterval";
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = { processed: "#1e8a3c", failed: "#b1003e" };

  function interval() {
    return window.sidekiqPollInterval ? window.sidekiqPollInterval() : 5000;
  }

  function setupSlider() {
    var slider = document.getElementById("sldr");
    var label = document.getElementById("sldr-text");
    if (!slider) return;
    var show = function (ms) {
      if (label) label.textContent = Math.round(ms / 1000) + " s";
    };
    slider.value = interval();
    show(slider.value);
    slider.addEventListener("input", function () {
      show(slider.value);
    });
    slider.addEventListener("change", function () {
      localStorage.setItem(INTERVAL_KEY, slider.value);
      show(slider.value);
      document.dispatchEvent(new CustomEvent("interval:update", { detail: slider.value }));
    });
  }

  // --- 6.4: a small SVG line chart ----------------------------------------------------------
  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) {
      node.setAttribute(k, attrs[k]);
    });
    if (parent) parent.appendChild(node);
    return node;
  }

  // series: [{label, color, values: [numbers]}]; labels: one per value.
  function drawChart(container, series, labels) {
    var width = Math.max(container.clientWidth || 0, 300);
    var height = 180;
    var pad = { left: 50, right: 10, top: 10, bottom: 24 };
    var max = 1; // integer counts: the top of the scale is a whole number
    series.forEach(function (s) {
      s.values.forEach(function (v) {
        if (v > max) max = v;
      });
    });
    var n = Math.max(labels.length, 2);
    var x = function (i) {
      return pad.left + (i * (width - pad.left - pad.right)) / (n - 1);
    };
    var y = function (v) {
      return height - pad.bottom - (v * (height - pad.top - pad.bottom)) / max;
    };
    var svg = el("svg", {
      class: "sidekiq-chart",
      width: String(width),
      height: String(height),
      viewBox: "0 0 " + width + " " + height,
      role: "img",
    });
    el("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), stroke: "#999" }, svg);
    var ticks = [0, Math.round(max / 2), max].filter(function (v, i, all) {
      return all.indexOf(v) === i;
    });
    ticks.forEach(function (v) {
      var t = el("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": "11" }, svg);
      t.textContent = window.sidekiqFormatNumber ? window.sidekiqFormatNumber(Math.round(v), 0) : Math.round(v);
    });
    [0, labels.length - 1].forEach(function (i) {
      if (!labels[i]) return;
      var t = el("text", { x: x(i), y: height - 6, "text-anchor": i ? "end" : "start", "font-size": "11" }, svg);
      t.textContent = labels[i];
    });
    series.forEach(function (s) {
      var points = s.values
        .map(function (v, i) {
          return x(i).toFixed(1) + "," + y(v).toFixed(1);
        })
        .join(" ");
      el("polyline", { points: points, fill: "none", stroke: s.color, "stroke-width": "2", "data-series": s.key }, svg);
    });
    container.replaceChildren(svg);
  }

  function legend(container, series) {
    if (!container) return;
    var parts = series.map(function (s) {
      var last = s.values.length ? s.values[s.values.length - 1] : 0;
      return s.label + ": " + last;
    });
    container.textContent = parts.join("  ");
  }

  function historyChart() {
    var box = document.getElementById("history");
    if (!box || !box.hasAttribute("data-processed")) return;
    var processed = JSON.parse(box.getAttribute("data-processed") || "{}");
    var failed = JSON.parse(box.getAttribute("data-failed") || "{}");
    var days = Object.keys(processed).sort();
    var series = [
      { key: "processed", label: box.getAttribute("data-processed-label"), color: COLORS.processed,
        values: days.map(function (d) { return processed[d] || 0; }) },
      { key: "failed", label: box.getAttribute("data-failed-label"), color: COLORS.failed,
        values: days.map(function (d) { return failed[d] || 0; }) },
    ];
    drawChart(box, series, days);
    legend(document.getElementById("history-legend"), series);
  }

  function realtimeChart() {
    var box = document.getElementById("realtime");
    var history = document.getElementById("history");
    if (!box || !history) return;
    var url = history.getAttribute("data-update-url");
    var points = 50;
    var series = [
      { key: "processed", label: box.getAttribute("data-processed-label"), color: COLORS.processed, values: [] },
      { key: "failed", label: box.getAttribute("data-failed-label"), color: COLORS.failed, values: [] },
    ];
    var labels = [];
    var previous = null;
    var timer = null;
    var poll = function () {
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json();
        })
        .then(function (stats) {
          var s = stats.sidekiq;
          if (previous) {
            series[0].values.push(Math.max(s.processed - previous.processed, 0));
            series[1].values.push(Math.max(s.failed - previous.failed, 0));
            labels.push(new Date().toUTCString().split(" ")[4]);
            if (labels.length > points) {
              labels.shift();
              series[0].values.shift();
              series[1].values.shift();
            }
            drawChart(box, series, labels);
            legend(document.getElementById("realtime-legend"), series);
          }
          previous = s;
          if (window.updateStatsSummary) window.updateStatsSummary(s);
          if (window.updateRedisStats) window.updateRedisStats(stats.redis);
          if (window.updateFooterUTCTime) window.updateFooterUTCTime(stats.server_utc_time);
          if (window.pulseBeacon) window.pulseBeacon();
        })
        .catch(function () {
          /* the next tick tries again */
        });
    };
    var restart = function () {
      clearInterval(timer);
      timer = setInterval(poll, interval());
    };
    drawChart(box, series, labels);
    poll();
    restart();
    document.addEventListener("interval:update", restart);
  }

  function start() {
    setupSlider();
    // Only where the page has 6.4's chart containers (7.x/8.x use <canvas> and Chart.js).
    historyChart();
    realtimeChart();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
