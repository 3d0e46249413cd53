// The staff desk's keyboard: j/k next and previous (rows on the queue, requests on a request's page),
// a assign to me, r reply (ask), p approve, d decline, ? help. Keys typed into a field are left alone.
// Also asks every half minute whether another agent has the request open or changed it.
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function help(show) {
    var box = document.getElementById("shortcuts-help");
    if (!box) return;
    box.hidden = show === undefined ? !box.hidden : !show;
    if (!box.hidden) document.getElementById("shortcuts-close").focus();
  }

  function go(link) {
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (!target) { window.location.href = link.href; return; }
    target.scrollIntoView({ block: "start" });
    var field = document.getElementById(link.dataset.focus || "");
    if (field) field.focus({ preventScroll: true });
  }

  // The queue: j and k move a highlight over the rows; Enter (on the focused link) opens one.
  var rows = Array.prototype.slice.call(document.querySelectorAll("a.queue-link"));
  var current = -1;
  function move(step) {
    if (!rows.length) return;
    if (current >= 0) rows[current].closest("tr").classList.remove("current");
    current = Math.max(0, Math.min(rows.length - 1, current + step));
    rows[current].closest("tr").classList.add("current");
    rows[current].focus();
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "Escape") { help(false); return; }
    if (event.key === "?") { event.preventDefault(); help(); return; }
    if (rows.length && (event.key === "j" || event.key === "k")) {
      event.preventDefault();
      move(event.key === "j" ? 1 : -1);
      return;
    }
    var bound = document.querySelector('#action-bar [data-key="' + event.key + '"]');
    if (!bound) return;
    event.preventDefault();
    if (bound.tagName === "BUTTON") bound.click();
    else if (bound.dataset.focus) go(bound);
    else window.location.href = bound.href;
  });

  var bar = document.getElementById("action-bar");
  if (!bar) return;
  bar.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-focus]");
    if (link) { event.preventDefault(); go(link); }
  });
  document.getElementById("shortcuts-button").addEventListener("click", function () { help(); });
  document.getElementById("shortcuts-close").addEventListener("click", function () { help(false); });

  var notice = document.getElementById("presence-notice");
  function check() {
    var url = bar.dataset.presenceUrl + "?version=" + encodeURIComponent(bar.dataset.version);
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (!answer) return;
        notice.textContent = answer.notices.join(" ");
        notice.hidden = answer.notices.length === 0;
      })
      .catch(function () { /* offline for a moment: ask again next time */ });
  }
  window.setInterval(check, 30000);
})();
