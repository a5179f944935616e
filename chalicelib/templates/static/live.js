// The live room refreshes its rows from /admin/live/<workshop>/data every few seconds, without a
// full reload; every text goes in as text (textContent), never as markup.
(function () {
  "use strict";
  var table = document.getElementById("live-rows");
  if (!table || !window.fetch) { return; }
  var EVERY = 5000, workshop = table.dataset.workshop, csrf = table.dataset.csrf, back = table.dataset.back;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      if (c !== null && c !== undefined) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); }
    });
    return node;
  }
  function hhmmss(iso) { return iso ? iso.slice(11, 19) + " UTC" : "—"; }
  function form(action, label, cls, aria) {
    return el("form", {method: "post", action: action}, [
      el("input", {type: "hidden", name: "csrf", value: csrf}),
      el("input", {type: "hidden", name: "back", value: back}),
      el("button", {type: "submit", "class": cls, "aria-label": aria || label}, [label])]);
  }
  function row(r) {
    var where = "—";
    if (r.notebook) { where = r.notebook + (r.step ? ", step " + r.step + (r.steps ? " of " + r.steps : "") : ""); }
    var checks = el("td", {}, [r.checks_passed + " / " + r.checks_total]);
    if (r.last_check) {
      checks.appendChild(el("br"));
      checks.appendChild(el("span", {"class": "muted"}, [r.last_check.id + (r.last_check.passed ? " passed" : " failed")]));
    }
    var needs = el("td", {}, []);
    if (r.hand) { needs.appendChild(el("span", {"class": "badge pending"}, ["Hand up since " + hhmmss(r.hand)])); }
    if (r.stuck) { needs.appendChild(el("span", {"class": "badge closed"}, ["Stuck: " + r.stuck])); }
    var actions = el("td", {"class": "actions"}, []);
    if (r.hand) { actions.appendChild(form("/admin/live/" + workshop + "/hands/" + r.registration, "Answered", "small", "Answered " + r.student)); }
    if (r.status === "active") {
      [["extend", "Extend"], ["reset", "Reset"], ["end", "End"]].forEach(function (a) {
        actions.appendChild(form("/admin/registrations/" + r.registration + "/" + a[0], a[1],
          "small " + (a[0] === "extend" ? "secondary" : "danger"), a[1] + " " + r.student));
      });
    }
    var activity = r.last_activity ? el("time", {datetime: r.last_activity}, [hhmmss(r.last_activity)]) : "—";
    var tr = el("tr", {id: "seat-" + r.student}, [
      el("td", {}, [el("strong", {"class": "name"}, [r.name || "—"]), el("br"), el("code", {}, [r.student])]),
      el("td", {}, [r.status]), el("td", {}, [r.server]), el("td", {}, [where]), checks,
      el("td", {}, [activity]), needs, actions]);
    if (r.hand) { tr.className = "hand"; } else if (r.stuck) { tr.className = "stuck"; }
    return tr;
  }
  function refresh() {
    if (table.contains(document.activeElement) && document.activeElement.tagName === "BUTTON") {
      return setTimeout(refresh, EVERY);  // not under a facilitator's keyboard focus
    }
    fetch("/admin/live/" + encodeURIComponent(workshop) + "/data", {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
      .then(function (room) {
        var body = el("tbody", {}, room.rows.map(row));
        table.replaceChild(body, table.tBodies[0]);
        ["running", "hands", "stuck"].forEach(function (k) {
          var node = document.querySelector("[data-count=" + k + "]");
          if (node) { node.textContent = String(room.counts[k]); }
        });
        var asOf = document.getElementById("live-as-of");
        asOf.setAttribute("datetime", room.generated_at);
        asOf.textContent = hhmmss(room.generated_at);
      })
      .catch(function () { /* the next look tries again */ })
      .then(function () { setTimeout(refresh, EVERY); });
  }
  setTimeout(refresh, EVERY);
}());
