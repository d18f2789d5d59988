// segment-client debugger: a live view of what reached the local collector.
//
// Plain JS, no dependencies, no build step. Every value shown comes from untrusted input
// (event names, properties, rejected request bodies), so the DOM is built with
// createElement + textContent only; nothing here ever assigns innerHTML.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var MAX_ROWS = 1000;   // rows kept on the page; older ones are dropped from the view
  // Rows asked for per request: as many as the page keeps, so after any burst the page
  // shows exactly the newest MAX_ROWS (the newest page is newer than everything shown).
  var PAGE = MAX_ROWS;
  var GOLDEN_ANGLE = 137.508; // hue step between batches that follow each other
  var FILTERS = ["type", "event", "user_id", "q"];
  var KNOWN_TYPES = ["track", "identify", "page", "screen", "group", "alias"];

  var $ = function (id) { return document.getElementById(id); };
  var stream = $("stream");

  var state = {
    filters: readFilters(),
    lastEventId: 0,
    lastRejectionId: 0,
    items: [],          // {key: [time, id], el, detail} newest first, parallel to the DOM
    paused: false,
    generation: 0,      // bumps on filter change / clear so late answers are dropped
    timer: null,
    samples: [],        // [ms, total] from /v1/stats, for messages per minute
    online: null,
    batches: {},        // batchId -> order of first appearance in this view
    batchCount: 0,
    prefixes: {},       // batch id prefixes (one per collector run) in this view
    prefixCount: 0,
    skipped: 0,         // rows that arrived in bursts too large to show (no filter)
  };

  // ---------- small DOM helpers (text only) ----------

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clearChildren(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function str(value) {
    if (value === undefined || value === null) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  // ---------- URL <-> filters ----------

  function readFilters() {
    var params = new URLSearchParams(window.location.search);
    var f = {};
    FILTERS.forEach(function (name) { f[name] = (params.get(name) || "").trim(); });
    return f;
  }

  function writeFilters() {
    var params = new URLSearchParams();
    FILTERS.forEach(function (name) { if (state.filters[name]) params.set(name, state.filters[name]); });
    var qs = params.toString();
    var url = window.location.pathname + (qs ? "?" + qs : "") + window.location.hash;
    if (url !== window.location.pathname + window.location.search + window.location.hash) {
      window.history.replaceState(null, "", url);
    }
  }

  function showFilters() {
    $("f-type").value = state.filters.type;
    $("f-event").value = state.filters.event;
    $("f-user").value = state.filters.user_id;
    $("f-q").value = state.filters.q;
  }

  function anyFilter() {
    return FILTERS.some(function (name) { return state.filters[name] !== ""; });
  }

  // Rejected requests carry no message, so only the "rejected" pseudo-type and the
  // unfiltered view show them; free text narrows them by path and reason.
  function wantRejections() {
    var f = state.filters;
    if (f.type === "rejected") return f.event === "" && f.user_id === "";
    return !anyFilter();
  }

  function wantEvents() {
    return state.filters.type !== "rejected";
  }

  // ---------- fetching ----------

  function getJSON(url, options) {
    return fetch(url, Object.assign({ cache: "no-store", headers: { Accept: "application/json" } }, options || {}))
      .then(function (resp) {
        if (!resp.ok) throw new Error(resp.status + " " + resp.statusText + " for " + url);
        return resp.json();
      });
  }

  function eventsURL() {
    var params = new URLSearchParams();
    var f = state.filters;
    ["type", "event", "user_id", "q"].forEach(function (name) { if (f[name]) params.set(name, f[name]); });
    if (state.lastEventId) params.set("after", String(state.lastEventId));
    params.set("limit", String(PAGE));
    return "/v1/events?" + params.toString();
  }

  function rejectionsURL() {
    var params = new URLSearchParams();
    if (state.lastRejectionId) params.set("after", String(state.lastRejectionId));
    params.set("limit", String(PAGE));
    return "/v1/rejections?" + params.toString();
  }

  function poll() {
    var gen = state.generation;
    var jobs = [getJSON("/v1/stats").then(showStats)];
    if (!state.paused) {
      if (wantEvents()) {
        jobs.push(getJSON(eventsURL()).then(function (body) { if (gen === state.generation) addEvents(body); }));
      }
      if (wantRejections()) {
        jobs.push(getJSON(rejectionsURL()).then(function (body) { if (gen === state.generation) addRejections(body); }));
      }
    }
    return Promise.all(jobs).then(
      function () { setOnline(true); },
      function (err) { setOnline(false, err); }
    ).then(function () {
      if (gen === state.generation) renderEmpty();
    });
  }

  function schedule(delay) {
    window.clearTimeout(state.timer);
    state.timer = window.setTimeout(function () {
      poll().then(function () { schedule(document.hidden ? POLL_MS * 5 : POLL_MS); });
    }, delay);
  }

  function restart() {
    state.generation += 1;
    state.lastEventId = 0;
    state.lastRejectionId = 0;
    state.items = [];
    state.batches = {};
    state.batchCount = 0;
    state.prefixes = {};
    state.prefixCount = 0;
    state.skipped = 0;
    clearChildren(stream);
    $("more").hidden = true;
    schedule(0);
  }

  function setOnline(ok, err) {
    state.online = ok;
    var status = $("status");
    status.classList.toggle("offline", !ok);
    status.classList.toggle("paused", ok && state.paused);
    if (!ok) {
      status.textContent = "collector unreachable, retrying";
      status.title = err ? String(err.message || err) : "";
    } else {
      status.textContent = state.paused ? "paused" : "live";
      status.title = "";
    }
  }

  // ---------- rows ----------

  function eventName(m) {
    switch (m.type) {
      case "track": return str(m.event);
      case "page":
      case "screen": return [str(m.category), str(m.name)].filter(Boolean).join(" / ");
      case "group": return m.groupId !== undefined ? "group " + str(m.groupId) : "";
      case "alias": return str(m.previousId) + " \u2192 " + str(m.userId);
      case "identify": {
        var traits = m.traits && typeof m.traits === "object" ? Object.keys(m.traits) : [];
        return traits.length ? "traits: " + traits.slice(0, 4).join(", ") + (traits.length > 4 ? ", \u2026" : "") : "";
      }
      default: return str(m.event || m.name);
    }
  }

  function timeOf(iso) {
    var t = Date.parse(iso);
    return isNaN(t) ? 0 : t;
  }

  function clock(iso) {
    var t = timeOf(iso);
    if (!t) return str(iso);
    var d = new Date(t);
    var pad = function (n, w) { return String(n).padStart(w || 2, "0"); };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  // Batch ids are "<run prefix>-<sequence>". Within one run the label is "#<sequence>"
  // (unique); once the view holds batches of several runs (a reused database file) the
  // labels become the full ids. Colours follow the order batches appear in the view,
  // a golden angle apart, so batches next to each other never look alike.
  function batchParts(id) {
    var dash = id.lastIndexOf("-");
    return dash > 0 ? [id.slice(0, dash), id.slice(dash + 1)] : [id, ""];
  }

  function batchLabel(id) {
    var parts = batchParts(id);
    return state.prefixCount > 1 || !parts[1] ? id : "#" + parts[1];
  }

  function batchHue(id) {
    var order = state.batches[id];
    if (order === undefined) {
      order = state.batches[id] = state.batchCount++;
      var prefix = batchParts(id)[0];
      if (!state.prefixes[prefix]) {
        state.prefixes[prefix] = true;
        state.prefixCount += 1;
        if (state.prefixCount === 2) relabel();
      }
    }
    return Math.round((order * GOLDEN_ANGLE) % 360);
  }

  function relabel() {
    state.items.forEach(function (item) {
      var cell = item.el.querySelector(".cell.batch");
      var id = item.el.dataset.batch;
      if (cell && id) cell.textContent = batchLabel(id);
    });
  }

  function badge(text, cls, title) {
    var b = el("span", "badge " + cls, text);
    if (title) b.title = title;
    return b;
  }

  function eventRow(ev) {
    var m = ev.message && typeof ev.message === "object" ? ev.message : {};
    var type = str(m.type) || "?";
    var row = el("div", "row row-grid");
    row.dataset.id = String(ev.id);
    row.dataset.kind = "event";
    row.dataset.type = type;
    if (m.messageId !== undefined) row.dataset.messageId = str(m.messageId);
    if (ev.source && ev.source.kind) row.dataset.source = str(ev.source.kind);  // profile-links.js

    var typeCell = el("span", "cell type");
    typeCell.appendChild(badge(type, "t-" + (KNOWN_TYPES.indexOf(type) >= 0 ? type : "other")));
    row.appendChild(typeCell);

    var nameCell = el("span", "cell name");
    var name = eventName(m);
    nameCell.appendChild(el("span", "text" + (name ? "" : " muted"), name || "\u2014"));
    if (ev.duplicate) {
      row.classList.add("duplicate");
      nameCell.appendChild(badge("duplicate", "dup", "messageId " + str(m.messageId) + " was received before"));
    }
    var violations = Array.isArray(ev.violations) ? ev.violations : [];
    if (violations.length) {
      row.classList.add("violating");
      nameCell.appendChild(badge(violations.length + (violations.length === 1 ? " violation" : " violations"), "viol"));
      var list = el("span", "violations");
      violations.forEach(function (v) { list.appendChild(el("span", "violation", str(v))); });
      nameCell.appendChild(list);
    }
    row.appendChild(nameCell);

    var userCell = el("span", "cell user");
    if (m.userId !== undefined && m.userId !== null && m.userId !== "") {
      userCell.appendChild(el("span", "text", str(m.userId)));
    } else if (m.anonymousId !== undefined && m.anonymousId !== null) {
      userCell.appendChild(el("span", "anon", "anon"));
      userCell.appendChild(el("span", "text", str(m.anonymousId)));
    } else {
      userCell.appendChild(el("span", "text muted", "\u2014"));
    }
    row.appendChild(userCell);

    var timeCell = el("span", "cell time", clock(ev.receivedAt));
    timeCell.title = "received " + str(ev.receivedAt) + (m.timestamp ? "\ntimestamp " + str(m.timestamp) : "");
    row.appendChild(timeCell);

    var batch = str(ev.batchId);
    var hue = batch ? batchHue(batch) : 0;
    var batchCell = el("span", "cell batch", batch ? batchLabel(batch) : "\u2014");
    batchCell.title = batch ? "batch " + batch : "";
    if (!batch) batchCell.classList.add("none");
    if (batch) {
      row.dataset.batch = batch;
      batchCell.style.setProperty("--batch-hue", String(hue));
    }
    row.appendChild(batchCell);

    return { row: row, json: m, meta: [
      ["id", ev.id], ["messageId", m.messageId], ["received", ev.receivedAt], ["batch", batch || "\u2014"],
    ], violations: violations, duplicate: !!ev.duplicate };
  }

  function rejectionRow(rj) {
    var row = el("div", "row row-grid rejected");
    row.dataset.id = "r" + String(rj.id);
    row.dataset.kind = "rejection";
    row.dataset.type = "rejected";
    row.dataset.status = str(rj.status);

    var typeCell = el("span", "cell type");
    typeCell.appendChild(badge("rejected", "t-rejected"));
    row.appendChild(typeCell);

    var nameCell = el("span", "cell name");
    nameCell.appendChild(badge(str(rj.status) || "?", "status"));
    nameCell.appendChild(el("span", "text reason", str(rj.reason) || "no reason given"));
    row.appendChild(nameCell);

    row.appendChild(el("span", "cell user path", str(rj.path)));
    var timeCell = el("span", "cell time", clock(rj.receivedAt));
    timeCell.title = "received " + str(rj.receivedAt);
    row.appendChild(timeCell);
    row.appendChild(el("span", "cell batch none", "\u2014"));

    return { row: row, json: rj, meta: [["status", rj.status], ["path", rj.path], ["received", rj.receivedAt]],
      violations: [], duplicate: false };
  }

  function makeItem(built, key) {
    var row = built.row;
    row.tabIndex = 0;
    row.setAttribute("role", "button");
    row.setAttribute("aria-expanded", "false");
    var item = { key: key, el: row, detail: null, built: built };
    row.addEventListener("click", function () { toggle(item); });
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(item); }
    });
    return item;
  }

  function toggle(item) {
    if (item.detail) {
      item.detail.remove();
      item.detail = null;
      item.el.classList.remove("open");
      item.el.setAttribute("aria-expanded", "false");
      return;
    }
    item.detail = detailFor(item.built);
    item.el.after(item.detail);
    item.el.classList.add("open");
    item.el.setAttribute("aria-expanded", "true");
  }

  function detailFor(built) {
    var box = el("div", "detail");
    var bar = el("div", "detail-bar");
    built.meta.forEach(function (pair) {
      var m = el("span", "meta");
      m.appendChild(el("span", "k", pair[0]));
      m.appendChild(el("span", "v", str(pair[1])));
      bar.appendChild(m);
    });
    var text = JSON.stringify(built.json, null, 2);
    var copy = el("button", "copy", "Copy JSON");
    copy.type = "button";
    copy.addEventListener("click", function (e) {
      e.stopPropagation();
      copyText(text).then(
        function () { flash(copy, "Copied"); },
        function () { flash(copy, "Copy failed"); }
      );
    });
    bar.appendChild(copy);
    box.appendChild(bar);
    if (built.duplicate) box.appendChild(el("p", "note dup-note", "This messageId was received before: a retry or a replay."));
    if (built.violations.length) {
      var ul = el("ul", "note viol-list");
      built.violations.forEach(function (v) { ul.appendChild(el("li", "", str(v))); });
      box.appendChild(ul);
    }
    box.appendChild(el("pre", "json", text));
    return box;
  }

  function flash(button, text) {
    button.textContent = text;
    window.setTimeout(function () { button.textContent = "Copy JSON"; }, 1500);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    // Plain-HTTP pages on a LAN address are not a secure context: fall back to a selection.
    return new Promise(function (resolve, reject) {
      var area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      if (ok) { resolve(); } else { reject(new Error("copy failed")); }
    });
  }

  // Newest first; keys are [received ms, kind order, id] so events and rejections interleave
  // by time and ties keep id order.
  function newer(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) return a[i] > b[i];
    }
    return false;
  }

  function insert(item) {
    var items = state.items;
    var i = 0;
    while (i < items.length && newer(items[i].key, item.key)) i++;
    var anchor = i < items.length ? items[i].el : null;
    stream.insertBefore(item.el, anchor);
    items.splice(i, 0, item);
  }

  function trim() {
    var dropped = 0;
    while (state.items.length > MAX_ROWS) {
      var old = state.items.pop();
      if (old.detail) old.detail.remove();
      old.el.remove();
      dropped++;
    }
    if (dropped || state.skipped) showMore();
  }

  function showMore() {
    var more = $("more");
    more.hidden = false;
    var text = "Showing the newest " + MAX_ROWS + " rows; narrow the filters to see older ones.";
    if (state.skipped) {
      text += " Skipped: " + state.skipped + (state.skipped === 1 ? " message" : " messages") +
        " older than these arrived in the same burst.";
    }
    more.textContent = text;
  }

  function addEvents(body) {
    var events = Array.isArray(body && body.events) ? body.events : [];
    var maxId = state.lastEventId;
    var minId = null;
    // The answer is newest first: insert oldest first so each lands on top.
    for (var i = events.length - 1; i >= 0; i--) {
      var ev = events[i];
      if (typeof ev.id !== "number" || ev.id <= state.lastEventId) continue;
      insert(makeItem(eventRow(ev), [timeOf(ev.receivedAt), 1, ev.id]));
      if (ev.id > maxId) maxId = ev.id;
      if (minId === null || ev.id < minId) minId = ev.id;
    }
    // A full page: older new rows may exist below it. They are older than every row the
    // page keeps, so nothing is missing from the view; without filters (ids count every
    // message) the page says how many were passed over.
    if (events.length >= PAGE && minId !== null && state.lastEventId && !anyFilter()) {
      state.skipped += Math.max(0, minId - 1 - state.lastEventId);
    }
    // last_id is read with the rows: with no gap to fill, the next poll starts after it
    // even when the filters matched nothing.
    if (events.length < PAGE && typeof body.last_id === "number" && body.last_id > maxId) maxId = body.last_id;
    state.lastEventId = maxId;
    trim();
  }

  function addRejections(body) {
    var list = Array.isArray(body && body.rejections) ? body.rejections : [];
    var q = state.filters.q.toLowerCase();
    var maxId = state.lastRejectionId;
    for (var i = list.length - 1; i >= 0; i--) {
      var rj = list[i];
      if (typeof rj.id !== "number" || rj.id <= state.lastRejectionId) continue;
      if (rj.id > maxId) maxId = rj.id;
      if (q && (str(rj.reason) + " " + str(rj.path) + " " + str(rj.status)).toLowerCase().indexOf(q) < 0) continue;
      insert(makeItem(rejectionRow(rj), [timeOf(rj.receivedAt), 0, rj.id]));
    }
    state.lastRejectionId = maxId;
    trim();
  }

  function renderEmpty() {
    var empty = $("empty");
    if (state.items.length) { empty.hidden = true; return; }
    empty.hidden = false;
    empty.textContent = anyFilter()
      ? "No messages match these filters yet."
      : "Waiting for messages. Point a client at " + window.location.origin + " (it accepts POST /v1/batch).";
  }

  // ---------- summary strip ----------

  function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  function pick(obj, names) {
    for (var i = 0; i < names.length; i++) {
      if (obj && obj[names[i]] !== undefined && obj[names[i]] !== null) return obj[names[i]];
    }
    return undefined;
  }

  function chips(container, counts, filterName, limit) {
    clearChildren(container);
    var entries = Object.keys(counts || {}).map(function (k) { return [k, num(counts[k])]; });
    entries.sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); });
    if (limit) entries = entries.slice(0, limit);
    if (!entries.length) { container.appendChild(el("span", "muted", "\u2014")); return; }
    entries.forEach(function (pair) {
      var chip = el("button", "chip");
      chip.type = "button";
      chip.title = "filter " + filterName + " = " + pair[0];
      chip.appendChild(el("span", "chip-name", pair[0]));
      chip.appendChild(el("span", "chip-count", pair[1]));
      chip.addEventListener("click", function () { setFilter(filterName, pair[0]); });
      container.appendChild(chip);
    });
  }

  function showStats(s) {
    s = s || {};
    var byType = pick(s, ["by_type", "types", "byType"]) || {};
    var byEvent = pick(s, ["by_event", "events", "byEvent"]) || {};
    var total = num(pick(s, ["total", "messages", "total_messages", "events_total"]));
    if (!total) total = Object.keys(byType).reduce(function (acc, k) { return acc + num(byType[k]); }, 0);
    $("total").textContent = String(total);
    $("batches").textContent = String(num(pick(s, ["batches", "total_batches"])));
    $("duplicates").textContent = String(num(pick(s, ["duplicates", "duplicate"])));
    $("rejected").textContent = String(num(pick(s, ["rejected_requests", "rejected", "rejections"])));
    var violating = num(pick(s, ["with_violations"]));
    $("violations-stat").hidden = !violating;
    $("violations").textContent = String(violating);
    chips($("by-type"), byType, "type", 0);
    chips($("top-events"), byEvent, "event", 5);
    var lastMinute = pick(s, ["messages_last_minute"]);
    $("rate").textContent = String(typeof lastMinute === "number" ? lastMinute : rate(total));
  }

  // Messages per minute from the growth of the store's total over the last minute that
  // this page has watched (a cleared store restarts the window).
  function rate(total) {
    var now = Date.now();
    var samples = state.samples;
    if (samples.length && total < samples[samples.length - 1][1]) samples.length = 0;
    samples.push([now, total]);
    while (samples.length > 2 && now - samples[1][0] >= 60000) samples.shift();
    var first = samples[0];
    var span = now - first[0];
    if (span < 2000) return 0;
    var perMs = (total - first[1]) / span;
    return Math.round(perMs * 60000);
  }

  // ---------- controls ----------

  function setFilter(name, value) {
    state.filters[name] = value;
    showFilters();
    writeFilters();
    restart();
  }

  function readInputs() {
    var next = {
      type: $("f-type").value.trim(),
      event: $("f-event").value.trim(),
      user_id: $("f-user").value.trim(),
      q: $("f-q").value.trim(),
    };
    var changed = FILTERS.some(function (n) { return next[n] !== state.filters[n]; });
    if (!changed) return;
    state.filters = next;
    writeFilters();
    restart();
  }

  var debounce = null;
  function onInput() {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(readInputs, 250);
  }

  $("filters").addEventListener("submit", function (e) { e.preventDefault(); readInputs(); });
  $("f-type").addEventListener("change", readInputs);
  ["f-event", "f-user", "f-q"].forEach(function (id) {
    $(id).addEventListener("input", onInput);
    $(id).addEventListener("change", readInputs);
  });
  $("reset").addEventListener("click", function () {
    FILTERS.forEach(function (n) { state.filters[n] = ""; });
    showFilters();
    writeFilters();
    restart();
  });

  $("pause").addEventListener("click", function () {
    state.paused = !state.paused;
    var b = $("pause");
    b.textContent = state.paused ? "Resume" : "Pause";
    b.setAttribute("aria-pressed", state.paused ? "true" : "false");
    document.body.classList.toggle("is-paused", state.paused);
    setOnline(state.online !== false);
    if (!state.paused) schedule(0);
  });

  $("clear").addEventListener("click", function () {
    var b = $("clear");
    b.disabled = true;
    getJSON("/v1/clear", { method: "POST" })
      .catch(function () { return null; })
      .then(function () {
        b.disabled = false;
        state.samples = [];
        restart();
      });
  });

  window.addEventListener("popstate", function () {
    state.filters = readFilters();
    showFilters();
    restart();
  });

  showFilters();
  restart();
})();
