// Ruvon UI: live updates without a build. The pages work without this script; it only
// refreshes what is on screen while the tab is visible.
(function () {
  "use strict";
  var EVERY = 2000;

  function inside(element) {
    var active = document.activeElement;
    return active && active !== document.body && element.contains(active);
  }

  // The workflows list: re-fetch the table (and counts) unless the keyboard is in it.
  function pollList(element) {
    var url = element.getAttribute("data-poll");
    var every = parseInt(element.getAttribute("data-poll-every"), 10) || EVERY;
    var timer = setInterval(function () {
      if (document.hidden || inside(element)) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.status === 401 || response.status === 403 || response.redirected) {
            clearInterval(timer);
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null && html !== undefined) element.innerHTML = html; })
        .catch(function () { /* offline for a moment: try again next time */ });
    }, every);
  }

  // One workflow: reload the page when it has moved on, unless someone is typing in a form or
  // has sent one.
  function pollWorkflow(element) {
    var url = element.getAttribute("data-live");
    var version = element.getAttribute("data-version");
    var every = parseInt(element.getAttribute("data-poll-every"), 10) || EVERY;
    var busy = false;
    document.addEventListener("input", function () { busy = true; });
    // A form on its way (retry, cancel, resume): its own response is the next page. Reloading
    // now would cancel that navigation, and the operator would never see its outcome.
    document.addEventListener("submit", function () { busy = true; });
    var timer = setInterval(function () {
      if (document.hidden || busy) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok || response.redirected) { clearInterval(timer); return null; }
          return response.json();
        })
        .then(function (live) {
          if (live && String(live.version) !== version && !busy) {
            clearInterval(timer);
            // The workflow's own page (after a refused form the address is the form's).
            window.location.replace(element.getAttribute("data-page"));
          }
        })
        .catch(function () {});
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-poll]"), pollList);
    var workflow = document.getElementById("workflow");
    if (workflow) pollWorkflow(workflow);
  });
})();
