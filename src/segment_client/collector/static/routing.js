// segment-client debugger: the routing column and the per-destination filter.
//
// Added to the live view by its own script: when the collector has destinations
// (GET /v1/destinations), each event row gets a cell listing which destinations receive
// it (and, in the tooltip, why not), and the filters get a destination picker that shows
// only the rows a destination receives. Text only (createElement + textContent).
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var stream = $("stream");
  var filters = $("filters");
  if (!stream || !filters) return;

  var routed = new WeakMap();   // row element -> routing answer
  var queue = [];               // rows waiting for their routing
  var timer = null;
  var picker = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store", headers: { Accept: "application/json" } }).then(function (resp) {
      if (!resp.ok) throw new Error(resp.status + " for " + url);
      return resp.json();
    });
  }

  function apply(row) {
    var wanted = picker ? picker.value : "";
    if (!wanted) { row.classList.remove("route-hidden"); return; }
    var routing = routed.get(row);
    var shown = false;
    if (row.dataset.kind === "event" && routing) {
      shown = wanted === "\u0000none" ? routing.delivered.length === 0 : routing.delivered.indexOf(wanted) >= 0;
    }
    row.classList.toggle("route-hidden", !shown);
  }

  function applyAll() {
    Array.prototype.forEach.call(stream.children, function (row) {
      if (row.classList.contains("row")) apply(row);
    });
  }

  function fill(row, routing) {
    routed.set(row, routing);
    var cell = row.querySelector(".cell.routes");
    if (!cell) return;
    while (cell.firstChild) cell.removeChild(cell.firstChild);
    if (!routing.segment) {
      var off = el("span", "route off", "not sent to Segment");
      off.title = 'integrations["Segment.io"] is false';
      cell.appendChild(off);
    }
    (routing.decisions || []).forEach(function (d) {
      var badge = el("span", "route " + (d.delivered ? "on" : "off"), (d.delivered ? "\u2713 " : "\u2717 ") + String(d.destination));
      badge.title = String(d.reason || "");
      badge.setAttribute("data-destination", String(d.destination));
      badge.setAttribute("data-code", String(d.code));
      if (routing.segment) cell.appendChild(badge);
    });
    (routing.unknown_integrations || []).forEach(function (name) {
      var unknown = el("span", "route unknown", "? " + String(name));
      unknown.title = "integrations names " + JSON.stringify(name) + ", which is not a destination (keys are case-sensitive)";
      cell.appendChild(unknown);
    });
    row.classList.add("routed");
    apply(row);
  }

  function flush() {
    timer = null;
    var rows = queue.splice(0, 500);
    if (!rows.length) return;
    var ids = rows.map(function (row) { return row.dataset.id; });
    getJSON("/v1/routing?ids=" + ids.join(",")).then(function (body) {
      var found = (body && body.routing) || {};
      rows.forEach(function (row) { if (found[row.dataset.id]) fill(row, found[row.dataset.id]); });
    }).catch(function () { /* the next rows try again; these keep their placeholder */ });
    if (queue.length) timer = window.setTimeout(flush, 0);
  }

  function adopt(row) {
    if (!row.classList || !row.classList.contains("row") || row.querySelector(".cell.routes")) return;
    var cell = el("span", "cell routes");
    row.appendChild(cell);
    if (row.dataset.kind === "event" && /^[0-9]+$/.test(row.dataset.id || "")) {
      cell.appendChild(el("span", "muted", "\u2026"));
      queue.push(row);
      if (!timer) timer = window.setTimeout(flush, 50);
    }
    apply(row);
  }

  function start(names) {
    document.body.classList.add("with-routing");
    var head = document.querySelector("main .head");
    if (head) head.appendChild(el("span", "", "destinations"));
    var label = el("label", "", "destination ");
    picker = el("select");
    picker.id = "f-destination";
    picker.name = "destination";
    var all = el("option", "", "all");
    all.value = "";
    picker.appendChild(all);
    names.forEach(function (name) {
      var option = el("option", "", "delivered to " + name);
      option.value = name;
      picker.appendChild(option);
    });
    var none = el("option", "", "delivered to none");
    none.value = "\u0000none";
    picker.appendChild(none);
    label.appendChild(picker);
    var reset = $("reset");
    filters.insertBefore(label, reset || null);
    picker.addEventListener("change", applyAll);
    if (reset) reset.addEventListener("click", function () { picker.value = ""; applyAll(); });
    Array.prototype.forEach.call(stream.children, adopt);
    new MutationObserver(function (changes) {
      changes.forEach(function (change) { Array.prototype.forEach.call(change.addedNodes, adopt); });
    }).observe(stream, { childList: true });
  }

  // Only a collector with routing attached lists the Usage view (and has /v1/destinations).
  getJSON("/v1/views").then(function (views) {
    var attached = Array.isArray(views) && views.some(function (v) { return v && v.path === "/static/usage.html"; });
    if (!attached) return null;
    return getJSON("/v1/destinations").then(function (body) {
      var names = (body && Array.isArray(body.destinations) ? body.destinations : []).map(function (d) { return String(d.name); });
      if (names.length) start(names);
    });
  }).catch(function () { /* no routing on this collector: the view is unchanged */ });
})();
