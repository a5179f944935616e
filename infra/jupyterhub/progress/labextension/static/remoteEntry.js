/* Workshops-on-Demand: the notebook toolbar's "Ask for help" button.
 *
 * A JupyterLab 4 prebuilt extension with no build step: a module-federation container of its own
 * ({init, get} under window._JUPYTERLAB["wod-progress"]) that shares nothing and needs no token.
 * The button (placed by schemas/wod-progress/plugin.json) runs `%hand` silently in the notebook's
 * kernel, where wod_progress reports the raised hand to the live room like every other event.
 */
var _JUPYTERLAB;
(function () {
  "use strict";
  var COMMAND = "wod:ask-for-help";
  var UP = "Your hand is up: a facilitator will come to you.";
  var NO_KERNEL = "Start the notebook's kernel first (or use Ask for help on your workshop's status page).";
  var FAILED = "Your hand could not be raised from here: use Ask for help on your workshop's status page.";

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
          var future = kernel.requestExecute({code: "%hand", silent: true, store_history: false,
                                              allow_stdin: false, stop_on_error: false});
          return future.done.then(function (reply) {
            var ok = reply && reply.content && reply.content.status === "ok";
            return notify(app, ok ? UP : FAILED, ok ? "success" : "error");
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
