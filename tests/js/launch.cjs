// The system test's browser: headless Chromium (Debian's), driven by playwright-core.
//
// usage: node launch.cjs LAUNCH_URL HUB_URL SCREENSHOT MARK USER_DATA_DIR GATE
//
// Opens LAUNCH_URL (a Bindery loading page), shows the build log, watches the phase and
// the log lines arrive, takes a screenshot once the log holds MARK (a line the build prints
// mid-build), then creates GATE (a file the build waits for after MARK, so the build is
// still running at the screenshot however slow the machine), follows the page's redirect
// to the Jupyter server under HUB_URL, and asks the server's API with the launch token from
// that redirect. Records the /build requests the page made (with their build_token) and
// their answers' headers. Prints one JSON object.
"use strict";
const path = require("path");
const modules = process.env.BINDERY_NODE_PATH;
if (!modules) {
  console.error("BINDERY_NODE_PATH is not set: run the tests with `cargo xtask test`");
  process.exit(2);
}
const { chromium } = require(path.join(modules, "playwright-core"));

const fs = require("fs");
const [launchUrl, hubUrl, screenshot, mark, userDataDir, gate] = process.argv.slice(2);
const openGate = () => fs.writeFileSync(gate, "open\n");
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

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.BINDERY_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: FLAGS,
  });
  const result = { phases: [], log: "", screenshot: false, navigations: [], statuses: [], builds: [], buildHeaders: [] };
  try {
    // Content-Security-Policy (issue 12): before the launch, the home page (same origin)
    // makes a link with its form. Both pages run under their policy: every violation
    // reported on Bindery's origin is collected (`securitypolicyviolation`), and one inline
    // script injected into the home page on purpose must be refused and reported, which
    // shows that the policy is enforced and that the collection works.
    const origin = new URL(launchUrl).origin;
    result.cspViolations = [];
    result.cspHeaders = {};
    // Injected by the browser (DevTools protocol), not by the page: no policy applies to it.
    await context.addInitScript(() => {
      document.addEventListener("securitypolicyviolation", (e) => {
        console.error("bindery-csp-violation " + JSON.stringify({
          document: e.documentURI, directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample,
        }));
      });
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => {
      const text = m.text();
      if (text.startsWith("bindery-csp-violation ")) {
        const v = JSON.parse(text.slice("bindery-csp-violation ".length));
        if (v.document.startsWith(origin)) { result.cspViolations.push(v); }
      }
    });
    page.on("response", (r) => {
      if (r.request().isNavigationRequest() && r.url().startsWith(origin)) {
        result.cspHeaders[r.url()] = r.headers()["content-security-policy"] || null;
      }
    });

    // The home page: its script fills the menu and makes the link as one types.
    await page.goto(origin + "/", { waitUntil: "load" });
    await page.selectOption("#provider", "gh");
    await page.fill("#repo", "binder-examples/requirements");
    result.homeLink = await page.inputValue("#link");
    // An inline script the policy does not list: blocked, and reported.
    result.probeRan = await page.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__binderyProbe = 1;";
      document.body.appendChild(s);
      return window.__binderyProbe === 1;
    });
    await new Promise((r) => setTimeout(r, 200));
    const probe = (v) => v.directive === "script-src-elem" && v.blocked === "inline" && v.document.startsWith(origin + "/");
    result.probeReported = result.cspViolations.some(probe);
    result.cspViolations = result.cspViolations.filter((v) => !probe(v));

    page.on("request", (r) => {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) {
        result.navigations.push(r.url());
      }
      // The event stream the loading page opens, with the build token it carries.
      if (new URL(r.url()).pathname.includes("/build/")) {
        result.builds.push(r.url());
      }
    });
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.includes("/build/")) {
        result.buildHeaders.push(r.headers());
      }
      if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
        result.statuses.push([r.url(), r.status()]);
      }
    });
    await page.goto(launchUrl, { waitUntil: "domcontentloaded" });
    await page.click("#toggle");
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
        if (!result.screenshot && state.log.includes(mark)) {
          await page.screenshot({ path: screenshot, fullPage: true });
          result.screenshot = true;
          result.phaseAtScreenshot = state.phase;
          openGate();
        }
        if (state.phase === "failed") {
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (atServer()) {
      await page.waitForLoadState("load");
    }
    result.finalUrl = page.url();
    // The redirect the loading page made: <server>/?token=<launch token>.
    const entry = result.navigations.find((u) => u.startsWith(hubUrl + "user/") && u.includes("token="));
    if (entry) {
      const url = new URL(entry);
      result.token = url.searchParams.get("token");
      const server = url.origin + url.pathname.replace(/[^/]*$/, "");
      result.server = server;
      const withToken = await fetch(server + "api/status", {
        headers: { Authorization: "token " + result.token },
      });
      result.apiStatus = withToken.status;
      result.apiBody = await withToken.text();
      const without = await fetch(server + "api/status", { redirect: "manual" });
      result.apiNoTokenStatus = without.status;
    }
  } finally {
    // Whatever happened, the build must not wait on.
    openGate();
    await context.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
