// The spawn-pending page: follow the hub's progress event stream
// (GET /hub/api/users/<name>/server/progress, JupyterHub's format), move the
// bar, and go to the server once it is ready. If the stream cannot be used,
// reload the page every few seconds: the page itself redirects when ready.
(function () {
  "use strict";
  var root = document.getElementById("pending");
  if (!root) return;
  var bar = document.getElementById("progress-bar");
  var box = document.getElementById("progress");
  var message = document.getElementById("progress-message");
  var log = document.getElementById("progress-log");
  var errorBox = document.getElementById("progress-error");
  var actions = document.getElementById("progress-actions");
  var readyUrl = root.getAttribute("data-ready-url");
  var finished = false;

  function setProgress(pct) {
    pct = Math.max(0, Math.min(100, pct | 0));
    bar.style.width = pct + "%";
    bar.setAttribute("aria-valuenow", String(pct));
  }

  function addLog(text) {
    if (!text) return;
    var li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    log.appendChild(li);
  }

  function fallback() {
    if (!finished) window.setTimeout(function () { window.location.reload(); }, 3000);
  }

  if (!window.EventSource) { fallback(); return; }
  var source = new EventSource(root.getAttribute("data-progress-url"));
  source.onmessage = function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (typeof data.progress === "number") setProgress(data.progress);
    if (data.message) { message.textContent = data.message; addLog(data.message); }
    if (data.failed) {
      finished = true;
      source.close();
      box.classList.add("failed");
      errorBox.textContent = data.message || "The server failed to start.";
      errorBox.classList.remove("hidden");
      actions.classList.remove("hidden");
    } else if (data.ready) {
      finished = true;
      source.close();
      box.classList.add("done");
      setProgress(100);
      window.location.href = readyUrl || data.url;
    }
  };
  source.onerror = function () {
    // the stream ended without ready/failed (stopped, or the API is unavailable)
    source.close();
    fallback();
  };
})();
