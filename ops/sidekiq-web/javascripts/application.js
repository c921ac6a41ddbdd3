// Our own application.js for the Sidekiq Web UI 6.4, 7.x and 8.x, written for this project.
//
// Debian's ruby-sidekiq packages drop upstream's application.js (it bundles third-party
// minified code), so config.ru serves this file where the gem has none. It gives the pages
// the behaviours their templates expect:
//   - data-confirm: "Are you sure?" before a form button acts (Delete, Retry All, Stop, …);
//   - live polling: the Live Poll / Stop Polling buttons refresh the page body in place;
//   - relative times for every <time datetime>, number formatting for [data-nwp];
//   - data-toggle (long job arguments, the collapsed menu);
//   - select-all and shift-click range selection of list checkboxes, and the bulk-action
//     buttons (the "… All" buttons hide while rows are selected, the per-row ones need one);
//   - the language select;
//   - the functions the 7.x/8.x dashboard chart calls on every poll (updateStatsSummary,
//     updateRedisStats, updateFooterUTCTime, updateNumbers, pulseBeacon,
//     updateScreenReaderDashboardValues).
// The pages' Content-Security-Policy forbids inline handlers, so everything is attached here.
"use strict";

(function () {
  var POLL_KEY = "sidekiqLivePoll";
  var INTERVAL_KEY = "sidekiqTimeInterval";

  function locale() {
    var l = document.body && document.body.getAttribute("data-locale");
    try {
      return Intl.getCanonicalLocales(l || "en")[0];
    } catch (e) {
      return "en";
    }
  }

  function pollInterval() {
    var ms = parseInt(localStorage.getItem(INTERVAL_KEY), 10) || 5000;
    return Math.max(ms, 2000);
  }

  // --- confirmations -------------------------------------------------------------------
  document.addEventListener(
    "click",
    function (event) {
      var el = event.target.closest && event.target.closest("[data-confirm]");
      if (el && !window.confirm(el.getAttribute("data-confirm"))) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );

  // --- relative times and numbers ------------------------------------------------------
  var UNITS = [
    ["year", 365 * 24 * 3600],
    ["month", 30 * 24 * 3600],
    ["day", 24 * 3600],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];

  function relative(date, now) {
    var secs = Math.round((date.getTime() - now) / 1000);
    var format = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
    for (var i = 0; i < UNITS.length; i++) {
      var unit = UNITS[i];
      if (Math.abs(secs) >= unit[1] || unit[0] === "second") {
        return format.format(Math.round(secs / unit[1]), unit[0]);
      }
    }
    return "";
  }

  function updateFuzzyTimes() {
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      if (!el.hasAttribute("title")) el.setAttribute("title", el.getAttribute("datetime"));
      el.textContent = relative(date, now);
    });
  }

  function formatNumber(value, precision) {
    return new Intl.NumberFormat(locale(), {
      minimumFractionDigits: precision,
      maximumFractionDigits: precision,
    }).format(value);
  }

  function updateNumbers() {
    document.querySelectorAll("[data-nwp]").forEach(function (el) {
      var raw = el.getAttribute("data-raw");
      if (raw === null) {
        raw = el.textContent.replace(/[^0-9.eE+-]/g, "");
        el.setAttribute("data-raw", raw);
      }
      var n = parseFloat(raw);
      if (isNaN(n)) return;
      var precision = parseInt(el.getAttribute("data-nwp"), 10) || 0;
      el.textContent = formatNumber(n, precision);
    });
  }

  // --- data-toggle -----------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-toggle]");
    if (!button) return;
    var name = button.getAttribute("data-toggle");
    if (name === "collapse") {
      // 6.4/7.x navbar: Bootstrap 3 collapse.
      var menu = document.querySelector(button.getAttribute("data-target"));
      if (!menu) return;
      event.preventDefault();
      var shown = menu.classList.toggle("in");
      menu.style.display = shown ? "block" : "";
      return;
    }
    var target = document.getElementById(name);
    var summary = null;
    if (target && !target.classList.contains("toggle") && document.getElementById(name + "_full")) {
      // 6.4/7.x: data-toggle names the short form; the full arguments sit in <id>_full.
      summary = target;
      target = document.getElementById(name + "_full");
    }
    if (!target) return;
    event.preventDefault();
    var open = target.classList.toggle("is-open");
    if (target.classList.contains("toggle")) target.style.display = open ? "block" : "none";
    if (summary) summary.style.display = open ? "none" : "";
  });

  // --- list selection and bulk buttons ----------------------------------------------------
  function rowBoxes(form) {
    return Array.prototype.slice.call(
      (form || document).querySelectorAll('input[type="checkbox"][name="key[]"]')
    );
  }

  function updateBulkButtons(form) {
    if (!form) return;
    var selected = rowBoxes(form).some(function (b) {
      return b.checked;
    });
    form.querySelectorAll(".bulk-action-buttons").forEach(function (b) {
      b.style.display = selected ? "none" : "";
    });
    // Buttons acting on the selection (no formaction, inside the list form).
    form.querySelectorAll('input[type="submit"][name]').forEach(function (b) {
      if (!b.hasAttribute("formaction") && rowBoxes(form).length) b.disabled = !selected;
    });
  }

  var lastClicked = null;
  document.addEventListener("click", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== "checkbox") return;
    var form = box.form || box.closest("form");
    if (box.classList.contains("check_all")) {
      rowBoxes(form).forEach(function (b) {
        b.checked = box.checked;
      });
    } else if (box.name === "key[]") {
      if (event.shiftKey && lastClicked && lastClicked !== box) {
        var boxes = rowBoxes(form);
        var a = boxes.indexOf(lastClicked);
        var b = boxes.indexOf(box);
        if (a >= 0 && b >= 0) {
          boxes.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (x) {
            x.checked = box.checked;
          });
        }
      }
      lastClicked = box;
    } else {
      return;
    }
    updateBulkButtons(form);
  });

  // --- language select ---------------------------------------------------------------------
  document.addEventListener("change", function (event) {
    if (event.target.id === "locale-select") {
      var form = document.getElementById("locale-form") || event.target.form;
      if (form) form.submit();
    }
  });

  // --- live polling ------------------------------------------------------------------------
  var pollTimer = null;

  function showPollButtons(running) {
    document.querySelectorAll(".live-poll-start").forEach(function (b) {
      b.classList.toggle("active", !running);
      b.style.display = running ? "none" : "inline-block";
    });
    document.querySelectorAll(".live-poll-stop").forEach(function (b) {
      b.classList.toggle("active", running);
      b.style.display = running ? "inline-block" : "none";
    });
  }

  function refreshPage() {
    return fetch(window.location.href, { headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("page");
        var current = document.getElementById("page");
        if (fresh && current) current.innerHTML = fresh.innerHTML;
        var time = doc.getElementById("serverUtcTime");
        if (time) updateFooterUTCTime(time.textContent);
        onPageContent();
        showPollButtons(true);
      })
      .catch(function () {
        /* the next tick tries again */
      });
  }

  function startPolling() {
    localStorage.setItem(POLL_KEY, "enabled");
    showPollButtons(true);
    clearInterval(pollTimer);
    pollTimer = setInterval(refreshPage, pollInterval());
  }

  function stopPolling() {
    localStorage.removeItem(POLL_KEY);
    clearInterval(pollTimer);
    pollTimer = null;
    showPollButtons(false);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".live-poll");
    if (!button) return;
    event.preventDefault();
    if (button.classList.contains("live-poll-start")) startPolling();
    else stopPolling();
  });

  // --- what the 7.x/8.x dashboard chart calls on every poll ---------------------------------
  var SUMMARY = {
    processed: "txtProcessed",
    failed: "txtFailed",
    busy: "txtBusy",
    enqueued: "txtEnqueued",
    retries: "txtRetries",
    scheduled: "txtScheduled",
    dead: "txtDead",
  };

  function setCount(id, value) {
    var el = document.getElementById(id);
    if (!el || value === undefined || value === null) return;
    if (el.hasAttribute("data-nwp")) {
      el.setAttribute("data-raw", String(value));
      el.textContent = formatNumber(Number(value), parseInt(el.getAttribute("data-nwp"), 10) || 0);
    } else {
      el.textContent = formatNumber(Number(value), 0);
    }
  }

  function updateStatsSummary(stats) {
    Object.keys(SUMMARY).forEach(function (key) {
      setCount(SUMMARY[key], stats[key]);
    });
  }

  function updateRedisStats(redis) {
    Object.keys(redis || {}).forEach(function (key) {
      var el = document.getElementById(key);
      if (el) el.textContent = redis[key];
    });
  }

  function updateFooterUTCTime(time) {
    var el = document.getElementById("serverUtcTime");
    if (el && time) el.textContent = time;
  }

  function pulseBeacon() {
    var beacon = document.getElementById("beacon");
    if (!beacon) return;
    beacon.classList.add("pulse");
    setTimeout(function () {
      beacon.classList.remove("pulse");
    }, 1000);
  }

  function updateScreenReaderDashboardValues(processed, failed) {
    var template = document.getElementById("sr-last-dashboard-update-template");
    var target = document.getElementById("sr-last-dashboard-update");
    if (!template || !target) return;
    target.textContent = template.textContent
      .replace("PROCESSED_COUNT", formatNumber(processed, 0))
      .replace("FAILED_COUNT", formatNumber(failed, 0));
  }

  window.updateStatsSummary = updateStatsSummary;
  window.updateRedisStats = updateRedisStats;
  window.updateFooterUTCTime = updateFooterUTCTime;
  window.updateNumbers = updateNumbers;
  window.updateFuzzyTimes = updateFuzzyTimes;
  window.pulseBeacon = pulseBeacon;
  window.updateScreenReaderDashboardValues = updateScreenReaderDashboardValues;
  window.sidekiqFormatNumber = formatNumber;
  window.sidekiqPollInterval = pollInterval;

  // --- start ---------------------------------------------------------------------------------
  function onPageContent() {
    updateFuzzyTimes();
    updateNumbers();
    document.querySelectorAll("form").forEach(function (form) {
      if (rowBoxes(form).length) updateBulkButtons(form);
    });
  }

  function start() {
    onPageContent();
    setInterval(updateFuzzyTimes, 30000);
    if (document.querySelector(".live-poll-start")) {
      if (localStorage.getItem(POLL_KEY) === "enabled") startPolling();
      else showPollButtons(false);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
