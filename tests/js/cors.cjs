// A page on another origin starts a launch through Bindery's /build, thebe's way (the
// browser test of issue 14: `cors_allow_origin`). Headless Chromium (Debian's), driven by
// playwright-core.
//
// usage: node cors.cjs PAGE_URL BUILD_URL USER_DATA_DIR
//
// Opens PAGE_URL (a page served from an origin other than Bindery's), and from that page
// reads BUILD_URL twice: with an EventSource (thebe's way), and with fetch sending
// `cache-control` (a header that makes the browser ask with a CORS preflight first, as
// BinderHub's JS client's fetch-based event source does when it sends its own headers).
// Each read stops at `ready` or `failed`. Also loads Bindery's favicons as images. Prints
// one JSON object: the phases each read saw
// and the error it met, if any, plus the /build answers' CORS headers as the browser got
// them.
"use strict";
const path = require("path");
const modules = process.env.BINDERY_NODE_PATH;
if (!modules) {
  console.error("BINDERY_NODE_PATH is not set: run the tests with `cargo xtask test`");
  process.exit(2);
}
const { chromium } = require(path.join(modules, "playwright-core"));

const [pageUrl, buildUrl, userDataDir] = process.argv.slice(2);
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
  const result = { answers: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/build/")) {
        const h = r.headers();
        result.answers.push({
          method: r.request().method(),
          status: r.status(),
          allowOrigin: h["access-control-allow-origin"] || null,
        });
      }
    });
    await page.goto(pageUrl, { waitUntil: "load" });
    result.pageOrigin = await page.evaluate(() => window.location.origin);
    // BinderHub's favicons, which pages of other sites show too: the browser decodes them.
    result.favicons = {};
    for (const name of ["favicon.ico", "favicon_building.ico", "favicon_success.ico", "favicon_fail.ico"]) {
      const url = new URL("/" + name, buildUrl).href;
      result.favicons[name] = await page.evaluate((src) => new Promise((resolve) => {
        const image = new Image();
        image.onload = () => resolve([image.naturalWidth, image.naturalHeight]);
        image.onerror = () => resolve(null);
        image.src = src;
      }), url);
    }
    result.eventSource = await page.evaluate((url) => new Promise((resolve) => {
      const seen = { phases: [], error: null };
      const source = new EventSource(url);
      const done = () => { source.close(); resolve(seen); };
      const timer = setTimeout(() => { seen.error = "timeout"; done(); }, 60000);
      source.onmessage = (m) => {
        const event = JSON.parse(m.data);
        seen.phases.push(event.phase);
        if (event.phase === "ready") { seen.url = event.url; }
        if (event.phase === "ready" || event.phase === "failed") { clearTimeout(timer); done(); }
      };
      // A refused CORS read ends the EventSource without a message (no reconnect).
      source.onerror = () => { seen.error = "error"; seen.readyState = source.readyState; clearTimeout(timer); done(); };
    }), buildUrl);
    result.fetch = await page.evaluate(async (url) => {
      const seen = { phases: [], error: null };
      try {
        const answer = await fetch(url, {
          headers: { accept: "text/event-stream", "cache-control": "no-cache" },
        });
        seen.status = answer.status;
        const reader = answer.body.getReader();
        const decoder = new TextDecoder();
        let text = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) { break; }
          text += decoder.decode(value, { stream: true });
          const phases = [...text.matchAll(/^data: (.*)$/gm)].map((m) => JSON.parse(m[1]).phase);
          seen.phases = phases;
          if (phases.includes("ready") || phases.includes("failed")) { await reader.cancel(); break; }
        }
      } catch (e) {
        seen.error = String(e);
      }
      return seen;
    }, buildUrl);
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
