// segment-client debugger, Profiles view: the identity graph the collector keeps.
//
// Plain JS, no dependencies. Every id, trait and event name is untrusted input: the DOM
// is built with createElement + textContent only; nothing here assigns innerHTML.
// URL: ?profile=ID opens a profile, ?event=ID opens the profile of a stored event.
(function () {
  "use strict";

  var POLL_MS = 3000;
  var $ = function (id) { return document.getElementById(id); };
  var state = { profiles: [], lints: {}, selected: null, search: "", generation: 0 };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function str(value) {
    if (value === undefined || value === null) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (!resp.ok) {
          return resp.json().catch(function () { return {}; }).then(function (body) {
            var err = new Error(str(body.error) || "HTTP " + resp.status);
            err.status = resp.status;
            throw err;
          });
        }
        return resp.json();
      });
  }

  function status(text, bad) {
    var node = $("p-status");
    node.textContent = text;
    node.classList.toggle("offline", !!bad);
  }

  function clock(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return "\u2014";
    var pad = function (n, w) { return String(n).padStart(w || 2, "0"); };
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function sourceBadge(source) {
    var kind = source && typeof source.kind === "string" ? source.kind : "unknown";
    var label = kind === "segment-client" ? "server" : kind;
    var badge = el("span", "src src-" + kind.replace(/[^a-z-]/g, ""), label);
    badge.title = (source && source.library ? str(source.library) + " " + str(source.version) : "no context.library");
    return badge;
  }

  function who(profile) {
    var ids = Array.isArray(profile.identifiers) ? profile.identifiers : [];
    var first = ids[0];
    return first ? first.type + ": " + str(first.value) : profile.id;
  }

  function matches(profile, needle) {
    if (!needle) return true;
    var hay = [profile.id].concat((profile.identifiers || []).map(function (i) { return str(i.value); }));
    hay.push(JSON.stringify(profile.traits || {}));
    return hay.join("\n").toLowerCase().indexOf(needle) >= 0;
  }

  // ---------- the list ----------

  function renderList() {
    var list = $("profile-list");
    var needle = state.search.toLowerCase();
    var shown = state.profiles.filter(function (p) { return matches(p, needle); });
    var frag = document.createDocumentFragment();
    shown.forEach(function (p) {
      var item = el("li", "p-item");
      item.dataset.profile = p.id;
      item.tabIndex = 0;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(p.id === state.selected));
      item.appendChild(el("div", "who", who(p)));
      var meta = el("div", "meta");
      meta.appendChild(el("span", "", p.id));
      meta.appendChild(el("span", "", p.events + (p.events === 1 ? " event" : " events")));
      Object.keys(p.sources || {}).sort().forEach(function (kind) {
        meta.appendChild(el("span", "", (kind === "segment-client" ? "server" : kind) + " " + p.sources[kind]));
      });
      if (p.merges) meta.appendChild(el("span", "", p.merges + (p.merges === 1 ? " merge" : " merges")));
      var lints = state.lints[p.id] || 0;
      if (lints) meta.appendChild(el("span", "lint-count", lints + (lints === 1 ? " lint" : " lints")));
      item.appendChild(meta);
      item.addEventListener("click", function () { select(p.id); });
      item.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(p.id); }
      });
      frag.appendChild(item);
    });
    list.replaceChildren(frag);
    $("p-count").textContent = shown.length === state.profiles.length
      ? state.profiles.length + (state.profiles.length === 1 ? " profile" : " profiles")
      : shown.length + " of " + state.profiles.length + " profiles";
  }

  function signature(id) {
    var p = state.profiles.filter(function (x) { return x.id === id; })[0];
    return p ? [p.events, p.merges, p.refusals, state.lints[id] || 0].join("/") : "";
  }

  function loadList() {
    return getJSON("/v1/profiles").then(function (body) {
      var before = state.selected ? signature(state.selected) : "";
      state.profiles = Array.isArray(body.profiles) ? body.profiles : [];
      state.lints = body.lints && typeof body.lints === "object" ? body.lints : {};
      renderList();
      status("live");
      // The open profile got new events (or merged away): show it again.
      if (state.selected && before && signature(state.selected) !== before) select(state.selected);
    }, function (err) { status("offline: " + err.message, true); });
  }

  // ---------- one profile ----------

  function section(title, node) {
    var box = el("section", "p-section");
    box.appendChild(el("h3", "", title));
    box.appendChild(node);
    return box;
  }

  function notes(items, render, emptyText) {
    var ul = el("ul", "p-notes p-card");
    if (!items.length) ul.appendChild(el("li", "muted", emptyText));
    items.forEach(function (item) { ul.appendChild(render(item)); });
    return ul;
  }

  function renderProfile(p, lints) {
    var main = $("profile");
    var frag = document.createDocumentFragment();
    var head = el("h2", "", who(p));
    frag.appendChild(head);
    main.dataset.profile = p.id;

    var ids = el("div", "ids p-card");
    ids.id = "identifiers";
    (p.identifiers || []).forEach(function (i) {
      var chip = el("span", "id-chip");
      chip.dataset.type = str(i.type);
      chip.appendChild(el("span", "k", i.type));
      chip.appendChild(el("span", "v", str(i.value)));
      ids.appendChild(chip);
    });
    frag.appendChild(section("Identifiers (" + p.id + ")", ids));

    var traits = p.traits || {};
    if (Object.keys(traits).length) {
      frag.appendChild(section("Traits", el("pre", "json p-card", JSON.stringify(traits, null, 2))));
    }

    var lintList = notes(lints, function (l) {
      var li = el("li", "lint");
      li.dataset.code = str(l.code);
      li.appendChild(el("span", "rule", l.code));
      li.appendChild(el("span", "", str(l.message)));
      li.appendChild(el("div", "fix", str(l.fix)));
      return li;
    }, "No identity problems found.");
    lintList.id = "lints";
    frag.appendChild(section("Lints", lintList));

    var merges = notes(p.merges || [], function (m) {
      var li = el("li", "merge");
      li.appendChild(el("span", "rule", m.absorbed + " \u2192 " + m.into));
      li.appendChild(el("span", "", str(m.reason)));
      return li;
    }, "Not formed by any merge.");
    merges.id = "merges";
    frag.appendChild(section("Merges (" + (p.mergeCount || 0) + ")", merges));

    var refusals = notes(p.refusals || [], function (r) {
      var li = el("li", "refusal");
      li.dataset.rule = str(r.rule);
      li.appendChild(el("span", "rule", r.rule));
      li.appendChild(el("span", "", "event " + r.event + ": " + r.type + " " + JSON.stringify(str(r.value)) + " " + str(r.reason)));
      return li;
    }, "No identifier was refused.");
    refusals.id = "refusals";
    frag.appendChild(section("Refused links", refusals));

    var tl = el("div", "tl");
    tl.id = "timeline";
    var headRow = el("div", "tl-row tl-head");
    ["time", "source", "type", "event / name", "user / anonymous id"].forEach(function (t) {
      headRow.appendChild(el("span", "", t));
    });
    tl.appendChild(headRow);
    (p.timeline || []).forEach(function (e) {
      var row = el("div", "tl-row tl-event");
      row.dataset.id = String(e.id);
      row.dataset.source = e.source && e.source.kind ? str(e.source.kind) : "unknown";
      var time = el("span", "time", clock(e.timestamp));
      time.title = str(e.timestamp);
      row.appendChild(time);
      var src = el("span", "");
      src.appendChild(sourceBadge(e.source));
      row.appendChild(src);
      row.appendChild(el("span", "type", e.type));
      row.appendChild(el("span", "name", e.name || (e.type === "alias" ? str(e.previousId) + " \u2192 " + str(e.userId) : "\u2014")));
      var idText = e.userId ? str(e.userId) : "";
      if (e.anonymousId) idText += (idText ? " \u00b7 " : "anon ") + str(e.anonymousId);
      row.appendChild(el("span", "ids-cell", idText || "\u2014"));
      tl.appendChild(row);
    });
    frag.appendChild(section("Timeline (" + (p.timeline || []).length + " events, every source)", tl));
    main.replaceChildren(frag);
  }

  function setURL(params) {
    var qs = new URLSearchParams(params).toString();
    window.history.replaceState(null, "", window.location.pathname + (qs ? "?" + qs : ""));
  }

  function select(id) {
    var gen = ++state.generation;
    state.selected = id;
    Array.prototype.forEach.call(document.querySelectorAll(".p-item"), function (item) {
      item.setAttribute("aria-selected", String(item.dataset.profile === id));
    });
    return getJSON("/v1/profiles/" + encodeURIComponent(id)).then(function (body) {
      if (gen !== state.generation) return;
      state.selected = body.id;
      setURL({ profile: body.id });
      renderProfile(body, Array.isArray(body.lints) ? body.lints : []);
    }, function (err) {
      if (gen !== state.generation) return;
      $("profile").replaceChildren(el("p", "empty", "Profile " + id + ": " + err.message));
    });
  }

  function openFromURL() {
    var params = new URLSearchParams(window.location.search);
    var event = params.get("event");
    var profile = params.get("profile");
    if (event) {
      return getJSON("/v1/profiles/by-event/" + encodeURIComponent(event)).then(
        function (body) { return select(body.id); },
        function (err) { $("profile").replaceChildren(el("p", "empty", "Event " + event + ": " + err.message)); }
      );
    }
    if (profile) return select(profile);
    return Promise.resolve();
  }

  function poll() {
    window.setTimeout(function () {
      (document.hidden ? Promise.resolve() : loadList()).then(poll, poll);
    }, POLL_MS);
  }

  $("p-search").addEventListener("input", function (e) {
    state.search = e.target.value.trim();
    renderList();
  });
  $("p-refresh").addEventListener("click", function () {
    loadList();
    if (state.selected) select(state.selected);
  });

  loadList().then(openFromURL).then(poll);
})();
