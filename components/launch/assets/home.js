// The home page's link generator: the same rules as bindery_core::launch::launch_link
// (an encoded repository where the provider table says so, HEAD by default, a trailing
// slash for providers without refs, `urlpath=/doc/tree/<file>` in file mode). The menu
// and each provider's rules come from the provider table in the page's configuration.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var providers = {};
  config.providers.forEach(function (p) {
    providers[p.id] = p;
    var option = document.createElement("option");
    option.value = p.id;
    option.textContent = p.label;
    $("provider").appendChild(option);
  });

  function detect(provider, input) {
    var repo = input.trim();
    var host = providers[provider].paste_host;
    if (host) {
      ["https://", "http://"].forEach(function (scheme) {
        if (repo.indexOf(scheme + host) === 0) { repo = repo.slice((scheme + host).length); }
      });
    }
    return repo.replace(/\/+$/, "");
  }

  function link() {
    var provider = $("provider").value;
    var repo = detect(provider, $("repo").value);
    if (!repo) { return ""; }
    var base = config.base_url.replace(/\/+$/, "");
    var part = providers[provider].encode_repo ? encodeURIComponent(repo) : repo;
    var url = base + "/v2/" + provider + "/" + part + "/" + (providers[provider].has_ref ? ($("ref").value.trim() || "HEAD") : "");
    var path = $("path").value.trim();
    if (path) {
      var urlpath = $("kind").value === "file" ? "/doc/tree/" + path : path;
      url += "?urlpath=" + encodeURIComponent(urlpath);
    }
    return url;
  }

  function update() {
    var url = link();
    var badge = config.base_url.replace(/\/+$/, "") + "/badge_logo.svg";
    $("link").value = url;
    $("markdown").value = url ? "[![Binder](" + badge + ")](" + url + ")" : "";
    $("rst").value = url ? ".. image:: " + badge + "\n :target: " + url : "";
  }

  ["provider", "repo", "ref", "path", "kind"].forEach(function (id) {
    $(id).addEventListener("input", update);
    $(id).addEventListener("change", update);
  });
  $("form").addEventListener("submit", function (e) {
    e.preventDefault();
    var url = link();
    if (url) { window.location.href = url; }
  });
  update();
})();
