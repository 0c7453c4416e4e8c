// BinderHub's own API client, `@jupyterhub/binderhub-client` from npm, driven against a
// Binder's `/build` as an embedder would use it.
//
// usage: node binderhub_client.mjs BUILD_ENDPOINT PROVIDER_SPEC [OPTIONS_JSON]
//
// BUILD_ENDPOINT is the Binder's build API (`http://127.0.0.1:3000/build`), PROVIDER_SPEC
// `<provider>/<spec>` as the client takes it. OPTIONS_JSON (all optional):
//   buildToken, buildOnly   passed to BinderRepository as they are;
//   eventDelayMs            the consumer awaits this long after every event (a slow consumer);
//   readyDelayMs            after `ready`, the consumer awaits this long before `close()`
//                           (what an embedder does when it awaits anything first);
//   timeoutMs               the whole run at most (default 120000).
//
// The client is an ES module built on `fetch` (Microsoft's fetch-event-source), not on
// EventSource; in a browser it finds `window` and `document`, so the few members it
// touches are given here: `window` is Node's global (fetch, timers) and `document` has no
// cookie and is never hidden. A `failed` event makes the library stop by rejecting a
// promise nobody awaits (in a browser, a console error); those rejections are recorded
// instead of ending the process.
//
// Prints one JSON object: `events` (every item the iterator yielded, in order), `closed`
// (whether the consumer called close()), `timedOut`, and `rejections` (the names of the
// unhandled rejections).

import path from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.BINDERY_NODE_PATH;
if (!modules) {
  console.error("BINDERY_NODE_PATH is not set: run the tests with `cargo xtask test`");
  process.exit(2);
}
const [endpoint, providerSpec, optionsJson] = process.argv.slice(2);
if (!endpoint || !providerSpec) {
  console.error("usage: node binderhub_client.mjs BUILD_ENDPOINT PROVIDER_SPEC [OPTIONS_JSON]");
  process.exit(2);
}
const options = JSON.parse(optionsJson || "{}");

globalThis.window = globalThis;
globalThis.document = {
  cookie: "",
  hidden: false,
  addEventListener() {},
  removeEventListener() {},
};

// The library logs its errors with console.log; stdout is the report's.
console.log = (...args) => console.error(...args);

const rejections = [];
process.on("unhandledRejection", (error) => {
  rejections.push((error && error.name) || String(error));
});

const clientModule = path.join(modules, "@jupyterhub/binderhub-client/lib/client.js");
const { BinderRepository } = await import(pathToFileURL(clientModule).href);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const repo = new BinderRepository(providerSpec, new URL(endpoint), {
  buildToken: options.buildToken,
  buildOnly: options.buildOnly,
});
const events = [];
let closed = false;

async function consume() {
  for await (const data of repo.fetch()) {
    events.push(data);
    if (options.eventDelayMs) {
      await sleep(options.eventDelayMs);
    }
    if (data.phase === "ready") {
      if (options.readyDelayMs) {
        await sleep(options.readyDelayMs);
      }
      repo.close();
      closed = true;
    }
  }
  return false;
}

const timedOut = await Promise.race([
  consume(),
  sleep(options.timeoutMs || 120000).then(() => true),
]);
if (timedOut) {
  repo.close();
}
// Let a late `onclose` of the library land, so that a spurious event after close() is
// seen rather than missed.
await sleep(100);
process.stdout.write(
  JSON.stringify({ events, closed, timedOut, rejections, buildUrl: repo.buildUrl.href }) + "\n",
);
process.exit(0);
