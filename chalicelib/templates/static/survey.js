// The thank-you mail's rating buttons open the survey with the rating chosen: with JavaScript the
// rating is sent at once (one click) when it is the participant's first answer; without JavaScript,
// or once answered, the participant presses Send (Save). A mail scanner that only fetches the link
// sends nothing.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosend]");
  if (form && form.querySelector("input[name=rating]:checked")) {
    history.replaceState(null, "", location.pathname);  // Back does not send it again
    form.submit();
  }
})();
