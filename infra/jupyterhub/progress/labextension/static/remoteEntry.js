/* Workshops-on-Demand: the notebook toolbar's "Ask for help" button.
 *
 * A JupyterLab 4 prebuilt extension with no build step: a module-federation container of its own
 * ({init, get} under window._JUPYTERLAB["wod-progress"]) that shares nothing and needs no token.
 * The button (placed by schemas/wod-progress/plugin.json) runs `%hand` silently in the notebook's
 * kernel, where wod_progress sends the raised hand to the live room at once, and says what became of
 * it (up, waiting for the hub, refused).
 */
var _JUPYTERLAB;
(function () {
  "use strict";
  var COMMAND = "wod:ask-for-help";
  var SAYS = {
    up: ["Your hand is up: a facilitator will come to you.", "success"],
    waiting: ["The hub does not answer right now: your hand goes up as soon as it does. If it is urgent, " +
              "press Ask for help on your registration page.", "warning"],
    refused: ["Your hand could not be raised from here (is your workshop still running?): press Ask for help " +
              "on your registration page.", "error"]
  };
  var NO_KERNEL = "Start the notebook's kernel first (or use Ask for help on your registration page).";
  var BUSY = "Your kernel is busy running a cell: your hand goes up when that cell finishes. If you are stuck " +
             "in it, interrupt the kernel, or press Ask for help on your registration page.";
  var FAILED = SAYS.refused[0];

  function notify(app, message, type) {
    return app.commands.execute("apputils:notify", {message: message, type: type, options: {autoClose: 8000}})
      .catch(function () { window.alert(message); });
  }

  function kernelOf(widget) {
    var context = widget && widget.sessionContext;
    var session = context && context.session;
    return session && session.kernel;
  }

  var plugin = {
    id: "wod-progress:plugin",
    description: "An Ask for help button on the notebook toolbar: raises the participant's hand in the live room.",
    autoStart: true,
    activate: function (app) {
      app.commands.addCommand(COMMAND, {
        label: "Ask for help",
        caption: "Raise your hand: a facilitator sees it in the live room and comes to you",
        execute: function () {
          var kernel = kernelOf(app.shell.currentWidget);
          if (!kernel) {
            return notify(app, NO_KERNEL, "warning");
          }
          if (kernel.status === "busy") {
            notify(app, BUSY, "warning");
          }
          // %hand sends the hand (after what the kernel reported before it) and keeps how it went,
          // which the reply carries back as a user expression
          var future = kernel.requestExecute({
            code: "%hand", silent: true, store_history: false, allow_stdin: false, stop_on_error: false,
            user_expressions: {wod_hand: "__import__('wod_progress').hand_state()"}});
          return future.done.then(function (reply) {
            var content = reply && reply.content;
            var answer = content && content.status === "ok" && content.user_expressions &&
                content.user_expressions.wod_hand;
            var text = answer && answer.status === "ok" && answer.data && answer.data["text/plain"];
            var said = SAYS[String(text || "").replace(/^'|'$/g, "")];
            return said ? notify(app, said[0], said[1]) : notify(app, FAILED, "error");
          }, function () {
            return notify(app, FAILED, "error");
          });
        }
      });
    }
  };

  var container = {
    init: function () { return Promise.resolve(); },
    get: function (module) {
      if (module === "./extension") {
        return Promise.resolve(function () { return {__esModule: true, default: [plugin]}; });
      }
      return Promise.reject(new Error("Module " + module + " does not exist in container wod-progress."));
    }
  };
  (_JUPYTERLAB = typeof _JUPYTERLAB === "undefined" ? {} : _JUPYTERLAB)["wod-progress"] = container;
})();
