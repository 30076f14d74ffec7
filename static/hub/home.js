// The home page follows its servers' state by itself, as JupyterHub's does:
// while a server shows Starting... or Stopping..., ask the REST API for the
// user's servers (GET /hub/api/users/<name>?include_stopped_servers, with the
// session cookie) and reload the page once one of them has moved on.
(function () {
  "use strict";
  var root = document.getElementById("home-servers");
  if (!root || !window.fetch) return;
  var pending = Array.prototype.filter.call(
    root.querySelectorAll("[data-server-state]"),
    function (el) {
      var state = el.getAttribute("data-server-state");
      return state === "starting" || state === "stopping";
    }
  );
  if (!pending.length) return;
  var url = root.getAttribute("data-user-url");
  var delay = 300;

  // JupyterHub's server model -> the state names the page renders
  function stateOf(model) {
    if (!model || model.stopped) return "stopped";
    if (model.pending === "spawn") return "starting";
    if (model.pending === "stop") return "stopping";
    return model.ready ? "running" : "starting";
  }

  function moved(servers) {
    return pending.some(function (el) {
      var model = servers[el.getAttribute("data-server-name")];
      return stateOf(model) !== el.getAttribute("data-server-state");
    });
  }

  function schedule() {
    window.setTimeout(check, delay);
    delay = Math.min(delay * 1.5, 2000);
  }

  function check() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (user) {
        if (moved(user.servers || {})) window.location.reload();
        else schedule();
      })
      .catch(schedule);
  }

  schedule();
})();
