// The dashboard's only script (served from /ui/static, CSP script-src 'self'):
// auto-refresh of the lists (pausable) and following a Job's log (server-sent
// events). Every page works without it, apart from these two.
"use strict";
(function () {
  function refresh(box) {
    var every = Number(box.getAttribute("data-refresh")) * 1000;
    var button = box.querySelector(".pause");
    var status = box.querySelector(".status");
    var paused = false;
    button.hidden = false;
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", String(paused));
      button.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
      status.textContent = paused ? "Auto-refresh paused." : "";
    });
    function tick() {
      if (paused || document.hidden) { return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("live");
          var live = document.getElementById("live");
          if (fresh && live) { live.replaceWith(document.importNode(fresh, true)); }
          status.textContent = "";
        })
        .catch(function () { status.textContent = "Refresh failed; retrying."; });
    }
    setInterval(tick, every);
  }

  function follow(button) {
    var log = document.getElementById("log");
    var status = document.getElementById("follow-status");
    var source = null;
    button.hidden = false;
    function stop(text) {
      if (source) { source.close(); source = null; }
      button.textContent = "Follow the log";
      status.textContent = text;
    }
    button.addEventListener("click", function () {
      if (source) { stop("Stopped following."); return; }
      var first = true;
      source = new EventSource(button.getAttribute("data-url"));
      button.textContent = "Stop following";
      status.textContent = "Following…";
      source.onmessage = function (e) {
        if (first) { log.textContent = ""; first = false; }
        log.textContent += (log.textContent ? "\n" : "") + e.data;
        log.scrollTop = log.scrollHeight;
      };
      source.addEventListener("end", function (e) { stop(e.data || "The log ended."); });
      source.onerror = function () { stop("The log stream closed."); };
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
    var f = document.getElementById("follow");
    if (f) { follow(f); }
  });
})();
