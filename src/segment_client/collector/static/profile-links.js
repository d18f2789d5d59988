// segment-client debugger, live view: a link from every event row to its profile in the
// Profiles view, and the row's source (browser / server), both after the row's ids.
//
// Kept apart from debugger.js: it only watches the rows debugger.js adds (data-id, and
// data-source from the `source` field of GET /v1/events). Text only, no innerHTML.
(function () {
  "use strict";
  var stream = document.getElementById("stream");
  if (!stream || !window.MutationObserver) return;

  function decorate(row) {
    if (row.dataset.kind !== "event" || row.dataset.profileLink) return;
    row.dataset.profileLink = "1";
    var user = row.querySelector(".cell.user");
    if (user) {
      var link = document.createElement("a");
      link.className = "profile-link";
      link.href = "/static/profiles.html?event=" + encodeURIComponent(row.dataset.id || "");
      link.textContent = "profile";
      link.title = "Open this event's profile (identity graph)";
      link.style.marginLeft = "8px";
      link.style.fontSize = "12px";
      // The row toggles its details on click; the link only navigates.
      link.addEventListener("click", function (e) { e.stopPropagation(); });
      link.addEventListener("keydown", function (e) { e.stopPropagation(); });
      user.appendChild(link);
    }
    var kind = row.dataset.source;
    if (kind && user) {
      var badge = document.createElement("span");
      badge.className = "src-mark";
      badge.textContent = kind === "segment-client" ? "server" : kind;
      badge.title = "source library: " + kind;
      badge.style.marginLeft = "6px";
      badge.style.fontSize = "11px";
      badge.style.opacity = "0.75";
      user.insertBefore(badge, user.querySelector("a.profile-link"));
    }
  }

  function scan(root) {
    if (root.nodeType !== 1) return;
    if (root.classList.contains("row")) decorate(root);
    Array.prototype.forEach.call(root.querySelectorAll(".row[data-kind=event]"), decorate);
  }

  new MutationObserver(function (records) {
    records.forEach(function (record) { record.addedNodes.forEach(scan); });
  }).observe(stream, { childList: true });
  scan(stream);
})();
