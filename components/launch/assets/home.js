// The home page's link generator: the same rules as bindery_core::launch::launch_link
// (encoded repository for gl/git/hydroshare/ckan, HEAD by default, a trailing slash for
// providers without refs, `urlpath=/doc/tree/<file>` in file mode).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("config").textContent);
  var encodeRepo = { gl: 1, git: 1, hydroshare: 1, ckan: 1 };
  var hasRef = { gh: 1, gl: 1, gist: 1, git: 1 };
  var hosts = { gh: "github.com/", gl: "gitlab.com/", gist: "gist.github.com/" };
  var $ = function (id) { return document.getElementById(id); };

  function detect(provider, input) {
    var repo = input.trim();
    var host = hosts[provider];
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
    var part = encodeRepo[provider] ? encodeURIComponent(repo) : repo;
    var url = base + "/v2/" + provider + "/" + part + "/" + (hasRef[provider] ? ($("ref").value.trim() || "HEAD") : "");
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
