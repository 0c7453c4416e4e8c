// The managed system test's browser (issue 15): headless Chromium (Debian's), driven by
// playwright-core, launching a repository the way a user of `cargo xtask run` does.
//
// usage: node home_launch.cjs BASE_URL REPO_URL REF HUB_URL SCREENSHOT MARK USER_DATA_DIR ROUNDS
//
// ROUNDS times: opens the home page at BASE_URL, picks the `git` provider, types REPO_URL
// and REF into the form and clicks Launch; on the loading page (/v2/git/...) shows the
// build log and watches the phase and the log; takes a screenshot (SCREENSHOT, first round)
// once the log holds MARK; waits until the page has sent the browser to the Jupyter server
// under HUB_URL, timing click to server; then asks the server's API with the launch token
// from that redirect, and without it. Prints one JSON object: {"rounds": [...]}.
"use strict";
const path = require("path");
const modules = process.env.BINDERY_NODE_PATH;
if (!modules) {
  console.error("BINDERY_NODE_PATH is not set: run the tests with `cargo xtask test`");
  process.exit(2);
}
const { chromium } = require(path.join(modules, "playwright-core"));

const [baseUrl, repoUrl, ref, hubUrl, screenshot, mark, userDataDir, rounds] = process.argv.slice(2);
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function round(page, n) {
  const result = { phases: [], log: "", navigations: [], screenshot: false };
  const onRequest = (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) {
      result.navigations.push(r.url());
    }
  };
  page.on("request", onRequest);
  await page.goto(baseUrl, { waitUntil: "load" });
  await page.selectOption("#provider", "git");
  await page.fill("#repo", repoUrl);
  await page.fill("#ref", ref);
  result.link = await page.inputValue("#link");
  const clicked = Date.now();
  await Promise.all([
    page.waitForURL((u) => u.pathname.startsWith("/v2/git/"), { timeout: 30000 }),
    page.click("button[type=submit]"),
  ]);
  result.loadingUrl = page.url();
  await page.click("#toggle").catch(() => {});
  const deadline = Date.now() + 300000;
  const atServer = () => page.url().startsWith(hubUrl + "user/");
  while (!atServer() && Date.now() < deadline) {
    let state = null;
    try {
      state = await page.evaluate(() => ({
        phase: document.getElementById("phase").textContent,
        log: document.getElementById("log").textContent,
        message: document.getElementById("message").textContent,
      }));
    } catch (e) {
      // The page is navigating away (to the server).
    }
    if (state) {
      if (result.phases[result.phases.length - 1] !== state.phase) {
        result.phases.push(state.phase);
      }
      result.log = state.log;
      result.message = state.message;
      if (n === 0 && !result.screenshot && state.log.includes(mark)) {
        await page.screenshot({ path: screenshot, fullPage: true });
        result.screenshot = true;
      }
      if (state.phase === "failed") {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (atServer()) {
    result.clickToServerMs = Date.now() - clicked;
    await page.waitForLoadState("load");
  }
  result.finalUrl = page.url();
  page.off("request", onRequest);
  // The redirect the loading page made: <server>/?token=<launch token>.
  const entry = result.navigations.find((u) => u.startsWith(hubUrl + "user/") && u.includes("token="));
  if (entry) {
    const url = new URL(entry);
    result.token = url.searchParams.get("token");
    result.server = url.origin + url.pathname.replace(/[^/]*$/, "");
    const withToken = await fetch(result.server + "api/status", {
      headers: { Authorization: "token " + result.token },
    });
    result.apiStatus = withToken.status;
    result.apiBody = await withToken.text();
    const without = await fetch(result.server + "api/status", { redirect: "manual" });
    result.apiNoTokenStatus = without.status;
  }
  return result;
}

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.BINDERY_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
  });
  const out = { rounds: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    for (let n = 0; n < Number(rounds); n++) {
      out.rounds.push(await round(page, n));
    }
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
