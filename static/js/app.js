// Sorya's page behaviour. No inline scripts anywhere: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // htmx requests carry the CSRF token in the header the server expects.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // The header's credit counter. Server fragments update it with an out-of-band swap of
  // partials/_credit_counter.html; a script that learns a new balance (the chat stream's final event)
  // calls Sorya.setCreditBalance.
  function setCreditBalance(balance) {
    var counter = document.getElementById("credit-counter");
    if (!counter || balance === undefined || balance === null) return;
    var value = Number(balance);
    if (!isFinite(value)) return;
    counter.setAttribute("data-balance", String(value));
    var amount = counter.querySelector(".credit-amount");
    if (amount) amount.textContent = value.toLocaleString("en-US");
  }
  window.Sorya = window.Sorya || {};
  window.Sorya.setCreditBalance = setCreditBalance;

  // Buttons marked data-copy-target copy the text of the element they name.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy-target"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.innerText).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // Buttons marked data-copy-url copy the text at that address (a version file's Raw: the whole file, even
  // when the view shows only its first lines).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-url]");
    if (!button || !navigator.clipboard) return;
    fetch(button.getAttribute("data-copy-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (text) { return navigator.clipboard.writeText(text); })
      .then(function () { flashLabel(button, "Copied"); }, function () { flashLabel(button, "Copy failed"); });
  });

  function flashLabel(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    setTimeout(function () { button.textContent = label; }, 1500);
  }

  // Copy buttons are rendered hidden (they need JavaScript): show them.
  function showCopyButtons(root) {
    (root || document).querySelectorAll("[data-copy-target][hidden], [data-copy-url][hidden]")
      .forEach(function (b) { b.hidden = false; });
  }
  document.addEventListener("DOMContentLoaded", function () { showCopyButtons(document); });
  document.addEventListener("htmx:load", function (event) { showCopyButtons(event.detail.elt.parentNode || document); });

  // Forms marked data-confirm ask before submitting (with JS off they submit to a confirm page).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
