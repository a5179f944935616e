// The script of every page (the pages' `script-src 'self'` allows it alone): times in the browser's
// own time zone, and a form that asks for it sent on arrival.
//
// Times in the browser's own time zone. The server writes every time as
// <time datetime="ISO in UTC">2026-11-26 09:00 UTC</time>, readable without JavaScript, in the
// page's language ("26 nov. 2026, 09:00 UTC" on a French page); this shows each in local time with
// its zone named, in that language (<html lang>: "26 Nov 2026, 10:00 CET"), as precise as the
// server's text (a date, with a year, or not; seconds or not), the UTC text kept as its tooltip.
// Times that arrive later (a status page refreshed in place, the live room's rows) are shown the
// same way. The status page's countdown ("until 11:00 UTC"), which its own script writes, is left alone.
(function () {
  "use strict";
  // <form data-autosend="NAME">: when the link that opened the page chose NAME (a mail's button that
  // opens the page with its choice checked), the form is sent at once, one click in all; Back does
  // not send it again. Without JavaScript the participant presses the form's button.
  // A mail scanner that only fetches the link sends nothing.
  var form = document.querySelector("form[data-autosend]");
  if (form && form.querySelector("input[name='" + form.getAttribute("data-autosend") + "']:checked")) {
    history.replaceState(null, "", location.pathname);
    form.submit();
    return;
  }
})();

(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat || !window.MutationObserver) { return; }
  var UTC_TEXT = / UTC$/, YEAR = /\d{4}/, SECONDS = /\d[:.h]\d\d[:.]\d\d/;
  var LANGUAGE = document.documentElement.lang || undefined;

  function local(el) {
    var iso = el.getAttribute("datetime"), shown = el.textContent.trim();
    if (!iso || el.id === "countdown" || !UTC_TEXT.test(shown) || shown === el.getAttribute("data-local")) { return; }
    var when = new Date(iso.replace(/(\.\d{3})\d+/, "$1"));  // at most milliseconds, as Date reads them
    if (isNaN(when.getTime())) { return; }
    var options = {hour: "2-digit", minute: "2-digit", timeZoneName: "short"};
    if (SECONDS.test(shown)) { options.second = "2-digit"; }
    if (YEAR.test(shown)) { options.year = "numeric"; options.month = "short"; options.day = "numeric"; }
    var text;
    try { text = new Intl.DateTimeFormat(LANGUAGE, options).format(when); } catch (e) { return; }
    el.setAttribute("data-local", text);
    el.setAttribute("title", shown);
    el.textContent = text;
  }

  function within(node) {
    if (node.nodeType !== 1) { return; }
    if (node.tagName === "TIME") { local(node); }
    var times = node.getElementsByTagName("time");
    for (var i = 0; i < times.length; i++) { local(times[i]); }
  }

  within(document.body);
  new MutationObserver(function (changes) {
    changes.forEach(function (change) {
      if (change.target.nodeType === 1 && change.target.tagName === "TIME") { local(change.target); }
      for (var i = 0; i < change.addedNodes.length; i++) { within(change.addedNodes[i]); }
    });
  }).observe(document.body, {childList: true, subtree: true});
}());
