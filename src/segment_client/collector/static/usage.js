// segment-client usage view: MTUs, API calls, events per destination, a projected month.
//
// Plain JS, no dependencies, no build step, nothing remote. Destination names come from a
// file and are shown with textContent only; the chart is SVG built with createElementNS.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#3358d4", "#d4572e", "#2f9e63", "#9c4fd6", "#c99a06", "#0f8fa8", "#c73c7b", "#6b7385"];
  var $ = function (id) { return document.getElementById(id); };
  var timer = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function num(n) { return typeof n === "number" ? n.toLocaleString("en-US") : "0"; }

  function multiplier() {
    var value = parseFloat($("multiplier").value);
    return isFinite(value) && value > 0 ? value : 1;
  }

  function chart(perMinute) {
    var box = $("chart");
    var legend = $("legend");
    clear(box);
    clear(legend);
    var minutes = Array.isArray(perMinute && perMinute.minutes) ? perMinute.minutes : [];
    var series = perMinute && perMinute.series && typeof perMinute.series === "object" ? perMinute.series : {};
    var names = Object.keys(series);
    var W = 640, H = 220, L = 44, R = 8, T = 10, B = 24;
    var max = 1;
    names.forEach(function (n) { (series[n] || []).forEach(function (v) { if (v > max) max = v; }); });
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, "aria-hidden": "true" });
    root.appendChild(svg("line", { "class": "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.appendChild(svg("line", { "class": "axis", x1: L, y1: T, x2: L, y2: H - B }));
    [0, max].forEach(function (v) {
      var y = H - B - (H - B - T) * (v / max);
      var t = svg("text", { "class": "tick", x: L - 6, y: y + 4, "text-anchor": "end" });
      t.textContent = num(v);
      root.appendChild(t);
    });
    if (minutes.length) {
      [0, minutes.length - 1].forEach(function (i) {
        var x = L + (W - L - R) * (minutes.length > 1 ? i / (minutes.length - 1) : 0);
        var t = svg("text", { "class": "tick", x: x, y: H - 6, "text-anchor": i ? "end" : "start" });
        t.textContent = String(minutes[i]).slice(11, 16) + " UTC";
        root.appendChild(t);
      });
    }
    names.forEach(function (name, k) {
      var values = Array.isArray(series[name]) ? series[name] : [];
      var color = COLORS[k % COLORS.length];
      var d = "";
      var total = 0;
      values.forEach(function (v, i) {
        var x = L + (W - L - R) * (values.length > 1 ? i / (values.length - 1) : 0);
        var y = H - B - (H - B - T) * (v / max);
        d += (i ? " L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        total += v;
      });
      if (d) {
        var path = svg("path", { "class": "series", d: d, stroke: color });
        path.setAttribute("data-series", name);
        path.setAttribute("data-total", String(total));
        root.appendChild(path);
      }
      var item = el("li");
      item.setAttribute("data-series", name);
      var swatch = el("span", "swatch");
      swatch.style.backgroundColor = color;
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(name + " (" + num(total) + ")"));
      legend.appendChild(item);
    });
    box.appendChild(root);
  }

  function table(report) {
    var body = $("destinations");
    clear(body);
    var names = Object.keys(report.destinations || {});
    $("no-destinations").hidden = names.length > 0;
    var projected = (report.projection && report.projection.destinations) || {};
    names.forEach(function (name) {
      var row = el("tr");
      row.setAttribute("data-destination", name);
      row.appendChild(el("td", "name", name));
      row.appendChild(el("td", "num events", num(report.destinations[name])));
      row.appendChild(el("td", "num projected", num(projected[name])));
      body.appendChild(row);
    });
  }

  function show(report, warehouse) {
    var projection = report.projection || {};
    $("month").textContent = report.month || "\u2014";
    $("mtu").textContent = num(report.mtu);
    $("api-calls").textContent = num(report.api_calls);
    $("projected-calls").textContent = num(projection.api_calls);
    $("projected-mtu").textContent = num(projection.mtu);
    $("not-sent").textContent = num(report.not_sent_to_segment);
    $("not-sent-stat").hidden = !report.not_sent_to_segment;
    var months = Array.isArray(report.months) ? report.months : [];
    var current = months.length ? months[months.length - 1] : null;
    $("mtu-detail").textContent = current
      ? "MTU " + num(current.mtu) + " = " + num(current.user_ids) + " userIds + " + num(current.anonymous_ids) +
        " anonymousIds never linked to a userId this month" + (report.identity_graph ? " (identity graph)" : "") + "."
      : "No messages yet.";
    var wh = $("warehouse");
    wh.classList.toggle("bad", !!(warehouse && warehouse.error));
    if (warehouse && warehouse.enabled) {
      wh.textContent = "Warehouse " + String(warehouse.url) + ": " + num(warehouse.rows_written) + " rows in " +
        num(warehouse.tables) + " tables, " + num(warehouse.lag_rows) + " message(s) behind (" + warehouse.lag_seconds + " s)" +
        (warehouse.error ? "; error: " + String(warehouse.error) : "") + ".";
    } else {
      wh.textContent = "";
    }
    table(report);
    chart(report.per_minute);
    schema(warehouse);
  }

  function schema(warehouse) {
    var tables = warehouse && Array.isArray(warehouse.schema) ? warehouse.schema : null;
    $("schema-section").hidden = !tables;
    var body = $("schema");
    clear(body);
    (tables || []).forEach(function (t) {
      var row = el("tr");
      row.setAttribute("data-table", String(t.table));
      row.appendChild(el("td", "table-name", t.table));
      row.appendChild(el("td", "num rows", num(t.rows)));
      row.appendChild(el("td", "columns", (Array.isArray(t.columns) ? t.columns : []).join(", ")));
      body.appendChild(row);
    });
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store", headers: { Accept: "application/json" } }).then(function (resp) {
      if (!resp.ok) throw new Error(resp.status + " " + resp.statusText + " for " + url);
      return resp.json();
    });
  }

  function setStatus(ok, err) {
    var status = $("status");
    status.classList.toggle("offline", !ok);
    status.textContent = ok ? "live" : "collector unreachable, retrying";
    status.title = ok ? "" : String((err && err.message) || err || "");
  }

  function poll() {
    var url = "/v1/usage?multiplier=" + encodeURIComponent(String(multiplier()));
    return Promise.all([getJSON(url), getJSON("/v1/warehouse?schema=1")]).then(
      function (answers) { show(answers[0], answers[1]); setStatus(true); },
      function (err) { setStatus(false, err); }
    );
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      poll().then(function () { schedule(document.hidden ? POLL_MS * 5 : POLL_MS); });
    }, delay);
  }

  $("projection").addEventListener("submit", function (e) { e.preventDefault(); schedule(0); });
  $("multiplier").addEventListener("input", function () { schedule(150); });
  schedule(0);
})();
