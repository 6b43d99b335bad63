// Voltaro dashboard: ask before a destructive action. The question comes from the page:
// data-confirm on the form (a command declared with `confirm`, a delete), on the button
// pressed (Reject), or on the chosen <option> of a select (ChangeAvailability Inoperative).
// Listening on the document in the capture phase runs before the form's own submit
// handlers (dashboard.js sends commands with fetch), so a "no" stops those too.
"use strict";
(function () {
  function questions(form, submitter) {
    const asked = [];
    if (form.dataset.confirm) asked.push(form.dataset.confirm);
    if (submitter && submitter.dataset && submitter.dataset.confirm) asked.push(submitter.dataset.confirm);
    form.querySelectorAll("select").forEach(function (select) {
      const chosen = select.selectedOptions && select.selectedOptions[0];
      if (chosen && chosen.dataset.confirm) asked.push(chosen.dataset.confirm);
    });
    return asked;
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const asked = questions(form, event.submitter);
    if (asked.length && !window.confirm(asked.join("\n\n"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
