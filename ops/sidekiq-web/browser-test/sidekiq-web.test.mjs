// Headless Chromium against a running Sidekiq admin (ops/sidekiq-web/serve) with our own
// application.js and dashboard.js. Started by ./run, which provides BASE_URL (…/sidekiq),
// SIDEKIQ_MAJOR, REDIS_PORT and a fresh USER_DATA_DIR, and seeds nothing: the tests write
// the Redis data they need with redis-cli.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const MAJOR = Number(process.env.SIDEKIQ_MAJOR);
const REDIS_PORT = process.env.REDIS_PORT;
const USER_DATA_DIR = process.env.USER_DATA_DIR;
assert.ok(BASE && MAJOR && REDIS_PORT && USER_DATA_DIR, "run through ops/sidekiq-web/browser-test/run");

const redis = (...args) =>
  execFileSync("redis-cli", ["-p", REDIS_PORT, ...args.map(String)], { encoding: "utf8" }).trim();

const now = () => Date.now() / 1000;
let n = 0;
const job = (extra = {}) =>
  JSON.stringify({
    class: "MailSenderJob",
    args: [{ to: `browser${++n}@example.test` }],
    queue: "default",
    retry: 3,
    jid: (n.toString(16) + "0".repeat(24)).slice(0, 24),
    created_at: now(),
    ...extra,
  });

let context;
let page;
const dialogs = [];
const failedScripts = [];
const pageErrors = [];
let answerDialogs = true;

before(async () => {
  context = await chromium.launchPersistentContext(USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
    viewport: { width: 1360, height: 1000 },
    locale: "en-US",
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    if (answerDialogs) await d.accept();
    else await d.dismiss();
  });
  page.on("response", (r) => {
    if (r.request().resourceType() === "script" && r.status() !== 200) {
      failedScripts.push(`${r.status()} ${r.url()}`);
    }
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
});

after(async () => {
  await context?.close();
});

test("every script the admin references answers 200 and runs without errors", async () => {
  const pages = ["/", "/busy", "/queues", "/retries", "/scheduled", "/morgue"];
  if (MAJOR >= 7) pages.push("/metrics");
  for (const path of pages) {
    await page.goto(BASE + path, { waitUntil: "load" });
    const srcs = await page.$$eval("script[src]", (s) => s.map((x) => x.src));
    assert.ok(srcs.some((s) => s.endsWith("/javascripts/application.js")), `${path} loads application.js`);
    for (const src of srcs) {
      const r = await page.request.get(src);
      assert.equal(r.status(), 200, `${src} (referenced by ${path})`);
    }
  }
  assert.deepEqual(failedScripts, []);
  assert.deepEqual(pageErrors, []);
});

test("the Dashboard chart draws", async () => {
  const today = new Date().toISOString().slice(0, 10);
  redis("INCRBY", "stat:processed", 5);
  redis("INCRBY", `stat:processed:${today}`, 5);
  await page.goto(BASE + "/", { waitUntil: "load" });
  if (MAJOR >= 7) {
    // dashboard-charts.js (the gem's, on Debian's Chart.js) draws on our update hooks.
    await page.waitForFunction(() => window.historyChart?.chart && window.realtimeChart?.chart);
    const painted = await page.$eval("#history-chart", (c) => {
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
      return { w: c.width, h: c.height, ink };
    });
    assert.ok(painted.w > 0 && painted.h > 0 && painted.ink > 100, JSON.stringify(painted));
  } else {
    // 6.4: our dashboard.js draws SVG lines for both charts.
    const line = page.locator("#history svg polyline[data-series=processed]");
    await line.waitFor({ state: "attached" });
    const ys = (await line.getAttribute("points")).split(" ").map((p) => Number(p.split(",")[1]));
    assert.ok(Math.min(...ys) < Math.max(...ys), "today's 5 rise above the other days");
    await page.locator("#realtime svg").waitFor({ state: "attached" });
  }
  // The realtime chart polls /stats: the summary bar follows Redis without a reload.
  await page.evaluate(() => localStorage.setItem("sidekiqTimeInterval", "2000"));
  await page.reload({ waitUntil: "load" });
  redis("INCRBY", "stat:processed", 1000);
  const want = redis("GET", "stat:processed");
  await page.waitForFunction(
    (w) => document.getElementById("txtProcessed").textContent.replace(/\D/g, "") === w,
    want,
    { timeout: 15000 }
  );
  assert.match(await page.locator("#txtProcessed").innerText(), /\d,\d{3}/, "number formatting");
});

test("live polling updates a counter in place", async () => {
  redis("SADD", "queues", "default");
  redis("LPUSH", "queue:default", job({ enqueued_at: now() }));
  await page.goto(BASE + "/queues", { waitUntil: "load" });
  const before = await page.locator("#txtEnqueued").innerText();
  assert.equal(before.trim(), "1");
  // The navbar holds two copies of each button (one for narrow screens); click the visible one.
  await page.locator(".live-poll-start:visible").first().click();
  await page.locator(".live-poll-stop:visible").first().waitFor();
  const marker = await page.evaluate(() => (window.__sameDocument = Math.random()));
  redis("LPUSH", "queue:default", job({ enqueued_at: now() }), job({ enqueued_at: now() }));
  await page.waitForFunction(() => document.getElementById("txtEnqueued").textContent.trim() === "3", null, {
    timeout: 20000,
  });
  assert.equal(await page.evaluate(() => window.__sameDocument), marker, "no full reload");
  await page.locator(".live-poll-stop:visible").first().click();
  await page.locator(".live-poll-start:visible").first().waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem("sidekiqLivePoll")), null);
});

test("Delete asks for confirmation and does nothing when refused", async () => {
  redis("SADD", "queues", "doomed");
  redis("LPUSH", "queue:doomed", job({ queue: "doomed", enqueued_at: now() }));
  await page.goto(BASE + "/queues", { waitUntil: "load" });
  const button = page.locator('form[action$="/queues/doomed"] [name=delete]');
  answerDialogs = false;
  dialogs.length = 0;
  await button.click();
  await page.waitForTimeout(500);
  assert.equal(dialogs.length, 1, "one confirmation");
  assert.match(dialogs[0], /doomed|sure/i);
  assert.equal(redis("LLEN", "queue:doomed"), "1", "refused: the queue is still there");
  answerDialogs = true;
  await Promise.all([page.waitForURL(/\/queues$/), button.click()]);
  assert.equal(redis("LLEN", "queue:doomed"), "0", "confirmed: deleted");
  assert.equal(redis("SISMEMBER", "queues", "doomed"), "0");
});

test("relative times, shift-click selection and bulk buttons on the Retries page", async () => {
  const t = now();
  for (let i = 0; i < 4; i++) {
    redis("ZADD", "retry", t + 3600 + i, job({
      retry_count: 0, failed_at: t - 120, error_class: "SmtpTransientError", error_message: "451 later",
    }));
  }
  await page.goto(BASE + "/retries", { waitUntil: "load" });
  const first = page.locator("time").first();
  await page.waitForFunction(() => /in (an? |\d+ )?hour|in 60 minutes/.test(document.querySelector("time").textContent));
  assert.match(await first.getAttribute("title"), /^\d{4}-\d\d-\d\dT/);
  const boxes = page.locator('input[type=checkbox][name="key[]"]');
  assert.equal(await boxes.count(), 4);
  await boxes.nth(0).click();
  await boxes.nth(2).click({ modifiers: ["Shift"] });
  const checked = await boxes.evaluateAll((b) => b.map((x) => x.checked));
  assert.deepEqual(checked, [true, true, true, false], "shift-click selects the range");
  if (MAJOR >= 8) {
    assert.equal(await page.locator(".bulk-action-buttons").first().isVisible(), false,
      "the … All buttons step aside while rows are selected");
  }
  await page.locator(".check_all").click();
  assert.deepEqual(await boxes.evaluateAll((b) => b.map((x) => x.checked)), [true, true, true, true]);
  await page.locator(".check_all").click();
  assert.deepEqual(await boxes.evaluateAll((b) => b.map((x) => x.checked)), [false, false, false, false]);
  if (MAJOR >= 8) {
    assert.equal(await page.locator(".bulk-action-buttons").first().isVisible(), true);
  }
});

test("the language select switches the admin's language", { skip: MAJOR < 7 && "6.4 has no language select" }, async () => {
  await page.goto(BASE + "/queues", { waitUntil: "load" });
  await page.selectOption("#locale-select", "ja");
  await page.waitForFunction(() => document.body.getAttribute("data-locale") === "ja");
  await page.selectOption("#locale-select", "en");
  await page.waitForFunction(() => document.body.getAttribute("data-locale") === "en");
  assert.deepEqual(pageErrors, []);
});
