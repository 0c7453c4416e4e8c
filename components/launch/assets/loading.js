// The loading page: opens the event stream of /build, shows each log line as it arrives,
// and sends the browser to the running server once the `ready` event comes.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("config").textContent);
  var log = document.getElementById("log");
  var phaseEl = document.getElementById("phase");
  var message = document.getElementById("message");
  var bar = document.getElementById("bar");
  var queue = document.getElementById("queue");
  var toggle = document.getElementById("toggle");
  var widths = { waiting: 5, fetching: 15, building: 40, pushing: 70, built: 80, launching: 90, ready: 100, failed: 100 };
  document.getElementById("share").textContent = config.share_url;

  function showLog(show) {
    log.hidden = !show;
    toggle.textContent = show ? "hide" : "show";
  }
  toggle.addEventListener("click", function () { showLog(log.hidden); });

  function append(text) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(text));
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  function setPhase(phase) {
    phaseEl.textContent = phase;
    phaseEl.className = "phase " + phase;
    if (widths[phase]) { bar.style.width = widths[phase] + "%"; }
    bar.className = phase === "failed" || phase === "ready" ? phase : "";
  }

  // Where the token goes: the launch path on the server, or null when the URL the
  // browser makes of it leaves the server's path. The edge refuses such paths already;
  // this is the last check before the token leaves, done by the parser that will follow
  // the URL (browsers read `%2e.` as `..`).
  function redirectUrl(ev) {
    var server = new URL(ev.url.replace(/\/?$/, "/"), window.location.href);
    var target = new URL(config.launch_path, server);
    if (target.origin !== server.origin || target.pathname.indexOf(server.pathname) !== 0) {
      return null;
    }
    target.searchParams.set("token", ev.token);
    return target.toString();
  }

  function fail(text) {
    setPhase("failed");
    message.className = "error";
    message.textContent = text;
    showLog(true);
  }

  var finished = false;
  // BinderHub's build token: a launch from this page is not counted against the
  // per-client limit on /build.
  var buildUrl = new URL(config.build_url, window.location.href);
  if (config.build_token) { buildUrl.searchParams.set("build_token", config.build_token); }
  var source = new EventSource(buildUrl.toString());
  source.onmessage = function (e) {
    var ev;
    try { ev = JSON.parse(e.data); } catch (err) { return; }
    var phase = String(ev.phase || "").toLowerCase();
    setPhase(phase);
    if (ev.message) { append(ev.message); }
    queue.textContent = ev.queue_position ? "position " + ev.queue_position + " in the build queue" : "";
    if (phase === "ready") {
      finished = true;
      source.close();
      var url = redirectUrl(ev);
      if (url === null) {
        fail("The launch path leads outside your server; not opening it.");
        return;
      }
      message.textContent = "Server ready, redirecting…";
      window.location.href = url;
    } else if (phase === "failed") {
      finished = true;
      source.close();
      fail(ev.message || "The launch failed.");
    } else if (ev.message) {
      message.textContent = ev.message.split("\n")[0];
    }
  };
  source.onerror = function () {
    if (finished) { return; }
    // EventSource reconnects by itself, sending Last-Event-ID; the server resumes the stream.
    message.textContent = "Connection lost, reconnecting…";
  };
})();
