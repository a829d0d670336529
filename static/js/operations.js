/* Caseloop operations screens: keyboard shortcuts, disclosure panels, confirmations.
 *
 * Everything here is progressive enhancement: every page works without it.
 * - [data-key="x"]: pressing x (outside a text field, no modifier) activates the element: a
 *   button with [data-reveal="id"] opens that panel and focuses its first field; any other
 *   button or link is clicked.
 * - [data-collapsed] panels start hidden (only when this script runs).
 * - Inside [data-submit-with="button-id"], Ctrl/Cmd+Enter clicks that button.
 * - select[data-shows-group="container-id"]: shows only the fieldset whose data-group matches.
 * - form[data-confirm="text"]: asks before submitting.
 * - Esc leaves a text field, so the shortcuts work again.
 */
(function () {
  "use strict";

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function firstField(panel) {
    return panel.querySelector("select, textarea, input:not([type=hidden]), button");
  }

  function reveal(button) {
    var panel = document.getElementById(button.getAttribute("data-reveal"));
    if (!panel) return;
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    var field = firstField(panel);
    if (field) field.focus();
  }

  function showGroup(select) {
    var container = document.getElementById(select.getAttribute("data-shows-group"));
    if (!container) return;
    container.querySelectorAll("[data-group]").forEach(function (group) {
      var active = group.getAttribute("data-group") === select.value;
      group.hidden = !active;
      group.disabled = !active; // inactive groups are not submitted
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-collapsed]").forEach(function (panel) { panel.hidden = true; });
    document.querySelectorAll("[data-reveal]").forEach(function (button) {
      button.addEventListener("click", function () { reveal(button); });
    });
    document.querySelectorAll("select[data-shows-group]").forEach(function (select) {
      showGroup(select);
      select.addEventListener("change", function () { showGroup(select); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
    var invalid = document.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      var scope = target.closest && target.closest("[data-submit-with]");
      if (scope) {
        var submit = document.getElementById(scope.getAttribute("data-submit-with"));
        if (submit) { event.preventDefault(); submit.click(); }
      }
      return;
    }
    if (event.key === "Escape" && isTyping(target)) { target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) return;
    if (event.key.length !== 1) return;
    var el = document.querySelector('[data-key="' + event.key.toLowerCase() + '"]');
    if (!el || el.disabled || el.closest("[hidden]")) return;
    event.preventDefault();
    if (el.hasAttribute("data-reveal")) reveal(el); else el.click();
  });
})();
