// Progress of a running evaluation or training job: poll its JSON, reload once it finishes.
// The only script of the UI; pages work without it (a <noscript> refresh takes over).
(function () {
  "use strict";
  var box = document.querySelector("[data-poll]");
  if (!box) { return; }
  var url = box.getAttribute("data-poll");
  var bar = document.getElementById("bar");
  var done = document.getElementById("done");
  var state = document.getElementById("state");
  function tick() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (p) {
        if (bar) { bar.value = p.done || 0; if (p.total) { bar.max = p.total; } }
        if (done) { done.textContent = (p.done || 0).toLocaleString(); }
        if (state) { state.textContent = p.state; }
        if (p.state === "queued" || p.state === "running") { setTimeout(tick, 700); }
        else { window.location.reload(); }
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 500);
})();
