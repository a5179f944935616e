// Live countdown on the status page; without JavaScript the page shows the end time instead.
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var end = Date.parse(el.getAttribute("datetime"));
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function tick() {
    var left = Math.max(0, Math.floor((end - Date.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    el.textContent = (h ? h + " h " : "") + pad(m) + " min " + pad(s) + " s";
    if (left === 0) { window.location.reload(); return; }
    setTimeout(tick, 1000);
  }
  tick();
})();
