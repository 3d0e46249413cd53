// After a form comes back with errors, focus moves to the summary above it, so that a screen
// reader reads the errors and a keyboard user starts from them; each line links to its field.
// A served file, not inline script: the Content-Security-Policy allows scripts from 'self' only.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector(".error-summary");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='#']");
    const field = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    // Following the link scrolls but leaves focus behind; put it in the field, its label in view.
    event.preventDefault();
    field.focus();
    (field.closest(".field, fieldset") || field).scrollIntoView({ block: "start" });
  });
});
