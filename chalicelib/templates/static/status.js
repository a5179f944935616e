// The status page: a live countdown while the workshop runs, and, while something is to come, a
// look at the page every data-refresh seconds that asks only whether it changed (If-None-Match):
// nothing new, the next look waits 1.5 times longer (at most a minute); news, the page's content
// is replaced in place. Each wait is drawn within 20 % of its value, so pages that a slow moment
// answered together do not go on looking all at once. Without JavaScript the page refreshes itself
// and shows the end time.
(function () {
  var BACKOFF = 1.5, MAX_WAIT = 60, JITTER = 0.2;
  var timer = null;

  function pad(n) { return n < 10 ? "0" + n : "" + n; }

  function countdown() {
    var el = document.getElementById("countdown");
    if (!el) return;
    var end = Date.parse(el.getAttribute("datetime"));
    function tick() {
      var left = Math.max(0, Math.floor((end - Date.now()) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = (h ? h + " h " : "") + pad(m) + " min " + pad(s) + " s";
      if (left === 0) { window.location.reload(); return; }
      timer = setTimeout(tick, 1000);
    }
    tick();
  }

  function follow(wait) {
    var card = document.querySelector("[data-refresh]");
    if (!card) return;
    var etag = card.getAttribute("data-etag");
    setTimeout(function () {
      fetch(window.location.pathname, {cache: "no-store", credentials: "same-origin",
                                       headers: {"If-None-Match": etag}})
        .then(function (response) {
          if (response.status === 304) { follow(Math.min(MAX_WAIT, wait * BACKOFF)); return null; }
          if (!response.ok) { follow(Math.min(MAX_WAIT, wait * BACKOFF)); return null; }
          return response.text();
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          var fresh = new DOMParser().parseFromString(html, "text/html");
          var main = fresh.querySelector("main");
          if (!main) return;
          if (timer) { clearTimeout(timer); timer = null; }
          document.querySelector("main").replaceWith(main);
          document.title = fresh.title;
          countdown();
          var next = document.querySelector("[data-refresh]");
          if (next) follow(parseFloat(next.getAttribute("data-refresh")));
        })
        .catch(function () { follow(Math.min(MAX_WAIT, wait * BACKOFF)); });
    }, wait * (1 - JITTER + 2 * JITTER * Math.random()) * 1000);
  }

  countdown();
  var card = document.querySelector("[data-refresh]");
  if (card) follow(parseFloat(card.getAttribute("data-refresh")));
})();
