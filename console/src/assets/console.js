// Troupe console: live updates for a server-rendered page. The page works without this file
// (reload to refresh). With it, the page listens to the server's change batches (/live, server-
// sent events) and, when a batch names one of the topics its live region shows (data-topics),
// fetches that region alone (header X-Troupe-Fragment: live) and swaps it in. Forms sit outside
// the region, so typing is never interrupted; focus inside the region is kept by element id.
// Batch numbers are one server process's own (data-server names it): a region rendered by
// another replica of an in-cluster console is refreshed on every batch of its topics.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  var region = function () { return document.getElementById("live"); };
  var seqOf = function (el) { return Number((el && el.dataset.seq) || 0); };
  var server = "";
  var ours = function (el) { return !!el && el.dataset.server === server; };
  var say = function (text) { if (status) { status.textContent = text; } };
  var busy = false;
  var again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { headers: { "X-Troupe-Fragment": "live" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status)); })
      .then(function (html) {
        var t = document.createElement("template");
        t.innerHTML = html;
        var fresh = t.content.getElementById("live");
        var old = region();
        if (!fresh || !old) { return; }
        var active = document.activeElement;
        var focused = active && old.contains(active) ? active.id : "";
        old.replaceWith(fresh);
        if (focused) {
          var again = document.getElementById(focused);
          if (again) { again.focus(); }
        }
        document.body.dataset.updated = String(Date.now());
      })
      .catch(function () { say("Live update failed; reload to refresh."); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var el = region();
  if (!el || !window.EventSource || !window.fetch) { return; }
  var topics = (el.dataset.topics || "").split(" ").filter(Boolean);
  var source = new EventSource("/live");
  source.addEventListener("open", function () { say("Live: this page updates itself."); });
  source.addEventListener("error", function () { say("Live updates interrupted; reconnecting (or reload to refresh)."); });
  // A batch sent between this page's render and the stream's start, or a restarted server.
  source.addEventListener("hello", function (e) {
    var words = e.data.split(" ");
    server = words[1] || "";
    if (!ours(region()) || Number(words[0]) !== seqOf(region())) { refresh(); }
  });
  source.addEventListener("change", function (e) {
    var seq = Number(e.lastEventId || 0);
    if (seq && ours(region()) && seq <= seqOf(region())) { return; }
    var changed = e.data.split(" ");
    if (changed.some(function (t) { return t === "*" || topics.indexOf(t) >= 0; })) { refresh(); }
  });
})();
