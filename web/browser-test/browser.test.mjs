// Headless Chromium against a running mail-web (+ worker): the seed's learning flow.
// Started by ./run, which provides BASE_URL, SCREENSHOT and a fresh USER_DATA_DIR.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const SCREENSHOT = process.env.SCREENSHOT;
const USER_DATA_DIR = process.env.USER_DATA_DIR;
assert.ok(BASE && USER_DATA_DIR, "run through web/browser-test/run");

let context;
let page;
const dialogs = [];

before(async () => {
  // Debian's chromium; Playwright adds --headless itself and owns --user-data-dir.
  context = await chromium.launchPersistentContext(USER_DATA_DIR, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1360, height: 1000 },
    locale: "ja-JP",
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.accept();
  });
});

after(async () => {
  await context?.close();
});

test("the page is in Japanese and offers the seed's buttons", async () => {
  await page.goto(BASE + "/");
  await page.getByRole("heading", { name: "メールアドレス管理" }).waitFor();
  for (const label of ["1,000件送信", "5,000件送信", "10,000件送信", "1,000件送信（エラー30%）"]) {
    assert.equal(await page.locator(`input[type=submit][value="${label}"]`).count(), 1, label);
  }
});

test("a script in a name is shown as text and never runs", async () => {
  await page.fill('input[name="email[name]"]', "<script>alert(1)</script>");
  await page.fill('input[name="email[email]"]', "xss@example.test");
  await page.click('input[type=submit][value="追加"]');
  await page.locator("#notice").waitFor();
  assert.match(await page.locator("#notice").innerText(), /メールアドレスを追加しました/);
  const cell = page.locator("#addresses td", { hasText: "<script>alert(1)</script>" });
  assert.equal(await cell.count(), 1);
  assert.deepEqual(dialogs, []);
});

test("generate addresses, click 1,000 and watch the bar complete", async () => {
  await page.click('input[type=submit][value="1,000件生成"]');
  await page.locator("#notice", { hasText: "1,000件のテスト用アドレスを作成しました" }).waitFor();

  await page.click('input[type=submit][data-count="1000"]');
  await page.locator("#notice", { hasText: "1,000件の送信ジョブを作成しました" }).waitFor();
  const row = page.locator("#history tbody tr").first();
  // The live panel refreshes itself every second; no reload here.
  await page.waitForFunction(
    () => document.querySelector("#history tbody tr")?.getAttribute("data-status") === "completed",
    null,
    { timeout: 180_000, polling: 250 },
  );
  assert.match(await row.innerText(), /1,000\s+1,000\s+0\s+0/);
  assert.equal(await row.locator(".progress-bar").getAttribute("style"), "width: 100.0%");
  assert.match(await row.locator(".badge").innerText(), /完了/);
  assert.ok((await page.locator("#workers tbody tr").first().innerText()).includes("/"), "a live worker");
  // The sparkline samples once a second: wait for the burst to show before the picture.
  await page.waitForFunction(
    () => !/ 0\.0\/s|^0\.0\/s/.test(document.querySelector("#throughput")?.innerText ?? "") ||
      document.querySelector("#throughput polyline")?.getAttribute("points")?.split(" ").some((p) => !p.endsWith(",39.0")),
    null,
    { timeout: 10_000, polling: 250 },
  );
  if (SCREENSHOT) {
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  }
});

test("the language switch turns the page English", async () => {
  await page.click("#lang-switch");
  await page.getByRole("heading", { name: "Addresses" }).waitFor();
  assert.equal(await page.locator('input[type=submit][value="Send 1,000"]').count(), 1);
  await page.click("#lang-switch"); // back to Japanese for whoever looks next
});
