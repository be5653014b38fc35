// Drives Debian's chromium through every view of the flytrap ui page with playwright-core,
// saves a screenshot of each view, and prints what each view showed as one JSON object on
// stdout. flytrap/tests/ui.rs starts the page over a seeded chain, runs this, and asserts
// the JSON against the seed. Usage: node drive.mjs URL SCREENSHOT_DIR ALICE_ADDRESS
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [url, shots, alice] = process.argv.slice(2);
if (!url || !shots || !alice) {
  console.error("usage: node drive.mjs URL SCREENSHOT_DIR ADDRESS");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.FLYTRAP_CHROMIUM || "/usr/bin/chromium",
  // The flags this machine needs: no sandbox as root, and no background network (closed).
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: 20000,
});
const out = { screenshots: [], console_errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10000);
  page.on("pageerror", (e) => out.console_errors.push(String(e)));
  // The API's 4xx answers to the bad input typed below are logged as failed loads: expected.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) out.console_errors.push(m.text());
  });
  // Only the page's own server: anything else would mean a CDN or a leak.
  const origin = new URL(url).origin;
  out.foreign_requests = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) out.foreign_requests.push(r.url()); });

  const unready = () => page.evaluate(() => document.body.removeAttribute("data-ready"));
  const ready = (view) => page.waitForSelector(`body[data-ready="${view}"]`, { state: "attached" });
  const rows = (id) => page.$$eval(`#${id} tbody tr`, (trs) =>
    trs.map((tr) => [...tr.cells].map((c) => c.innerText.trim())));
  const text = (sel) => page.$eval(sel, (e) => e.innerText.trim());
  const shot = async (name) => {
    const p = join(shots, name + ".png");
    await page.screenshot({ path: p, fullPage: true });
    out.screenshots.push(p);
  };
  const nav = async (view) => {
    await unready();
    await page.click(`nav a[data-view="${view}"]`);
    await ready(view);
  };
  const submit = async (view, fields) => {
    for (const [name, value] of Object.entries(fields)) {
      const sel = `#${view}-form [name="${name}"]`;
      if (await page.$eval(sel, (e) => e.tagName) === "SELECT") await page.selectOption(sel, value);
      else await page.fill(sel, value);
    }
    await unready();
    await page.click(`#${view}-form button[type=submit]`);
    await ready(view);
  };
  // Every record row links to its block and transaction.
  const links = (id) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => ({
    block: tr.querySelector("a.block")?.getAttribute("href") || null,
    tx: tr.querySelector("a.tx")?.getAttribute("href") || null,
  })));

  await page.goto(url);
  await ready("topics");
  out.chain = await text("#chain");
  out.topics = await rows("topics");
  await shot("1-topics");
  out.topics_status = await text("#status");
  // Search (server-side) and pages of 2 (the page size is a hash parameter).
  await submit("topics", { query: "VAULT" });
  out.topics_search = await rows("topics");
  out.topics_search_status = await text("#status");
  await shot("1b-topics-search");
  await unready();
  await page.goto(url + "#/topics?limit=2");
  await ready("topics");
  out.topics_page1 = (await rows("topics")).map((r) => r[0]);
  await unready();
  await page.click("#topics-next");
  await ready("topics");
  out.topics_page2 = (await rows("topics")).map((r) => r[0]);
  out.topics_page2_status = await text("#status");
  out.topics_next_disabled = await page.$eval("#topics-next", (b) => b.disabled);
  await unready();
  await page.click("#topics-prev");
  await ready("topics");
  out.topics_back = (await rows("topics")).map((r) => r[0]);
  await shot("1c-topics-page");

  await nav("changes");
  out.changes = await rows("changes");
  out.changes_links = await links("changes");
  await shot("2-changes");
  await submit("changes", { topic: "plant/+/temp", change: "revoke" });
  out.changes_filtered = await rows("changes");
  out.changes_filtered_hash = await page.evaluate(() => location.hash);
  await shot("3-changes-filtered");

  await nav("failures");
  out.failures = {
    counts: {
      connect_failed: await text("#count-connect-failed"),
      wrong_country: await text("#count-wrong-country"),
      bans: await text("#count-bans"),
    },
    bars: await page.$$eval("#chart rect.bar", (r) => r.length),
    by_country: await rows("by-country"),
    by_reason: await rows("by-reason"),
    records: await rows("failures"),
    links: await links("failures"),
  };
  await shot("4-failures");

  await nav("client");
  await submit("client", { address: alice });
  out.client = {
    topics: await rows("client-topics"),
    records: await rows("client-records"),
    links: await links("client-records"),
  };
  await shot("5-client");
  await submit("client", { address: "0x1234" });
  out.client_error = await text("#error");
  await shot("6-client-bad-address");

  await nav("sensitive");
  out.sensitive_all = await rows("sensitive-agg");
  const [since, until] = JSON.parse(process.env.FLYTRAP_UI_WINDOW || "[\"\", \"\"]");
  await submit("sensitive", { since, until });
  out.sensitive = {
    status: await text("#status"),
    aggregate: await rows("sensitive-agg"),
    reports: await rows("sensitive-reports"),
    links: await links("sensitive-reports"),
  };
  await shot("7-sensitive-window");
  await submit("sensitive", { since: until, until: since });
  out.sensitive_inverted = await text("#error");

  // Follow a record's links: the page's own JSON views of the transaction and block.
  await nav("changes");
  const first = out.changes_links[0];
  await page.goto(new URL(first.tx, url).href);
  out.tx = JSON.parse(await page.innerText("body"));
  await page.goto(new URL(first.block, url).href);
  out.block = JSON.parse(await page.innerText("body"));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
