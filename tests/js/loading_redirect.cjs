// Runs the loading page's script (components/launch/assets/loading.js) without a browser:
// a stub DOM and EventSource, Node's WHATWG URL (the parser browsers implement). Plays one
// `ready` event for the server at SERVER_URL with LAUNCH_PATH in the page's configuration,
// then prints where the page sent the browser and what it showed.
//
// usage: node loading_redirect.cjs LOADING_JS LAUNCH_PATH SERVER_URL
"use strict";
const fs = require("fs");
const vm = require("vm");

const [script, launchPath, serverUrl] = process.argv.slice(2);
const elements = {};
function element(id) {
  if (!elements[id]) {
    elements[id] = {
      textContent: "", className: "", hidden: true, style: {},
      scrollTop: 0, clientHeight: 0, scrollHeight: 0,
      appendChild(node) { this.textContent += node.text; },
      addEventListener() {},
    };
  }
  return elements[id];
}
element("config").textContent = JSON.stringify({
  build_url: "/build/gh/o/r/main", launch_path: launchPath, share_url: "",
});
let source = null;
class EventSource {
  constructor(url) { this.url = url; source = this; }
  close() { this.closed = true; }
}
const start = "https://binder.example/v2/gh/o/r/main";
const location = { href: start };
vm.runInNewContext(fs.readFileSync(script, "utf8"), {
  document: { getElementById: element, createTextNode: (text) => ({ text }) },
  window: { location },
  EventSource, URL, JSON, String,
});
source.onmessage({
  data: JSON.stringify({ phase: "ready", message: "ready\n", url: serverUrl, token: "tok123" }),
});
console.log(JSON.stringify({
  redirected: location.href !== start,
  href: location.href,
  phase: element("phase").textContent,
  message: element("message").textContent,
}));
