// segment-client debugger: the links between views (pages under /static/, listed by
// GET /v1/views). Shared by every view: a page with <nav id="views"> includes this
// script and gets the links. Built with createElement + textContent only.
(function () {
  "use strict";
  var nav = document.getElementById("views");
  if (!nav) return;
  fetch("/v1/views", { cache: "no-store", headers: { Accept: "application/json" } })
    .then(function (resp) { return resp.ok ? resp.json() : []; })
    .then(function (views) {
      if (!Array.isArray(views) || views.length < 2) return;
      views.forEach(function (view) {
        if (!view || typeof view.path !== "string" || view.path.charAt(0) !== "/") return;
        var link = document.createElement("a");
        link.href = view.path;
        link.textContent = String(view.title || view.path);
        if (view.path === window.location.pathname) link.setAttribute("aria-current", "page");
        nav.appendChild(link);
      });
      nav.hidden = false;
    })
    .catch(function () { /* no links: the page still works */ });
})();
