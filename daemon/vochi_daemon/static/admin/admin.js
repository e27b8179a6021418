// vochi-crm admin UI: progressive enhancement only; every form works without this file.
(function () {
  "use strict";

  // A form is sent once: a second click (or Enter) while the first request runs does nothing.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    var sent = false;
    form.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      if (sent) { event.preventDefault(); return; }
      sent = true;
      // disabled later, so the clicked button's name/value is still sent
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });

  // "Select all" checkboxes of the journal.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      var name = all.dataset.selectAll;
      all.form.querySelectorAll("input[type=checkbox][name='" + name + "']").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  // Mapping: show an extension given to two users while typing (the server checks it again).
  document.querySelectorAll("form[data-mapping]").forEach(function (form) {
    var inputs = Array.prototype.slice.call(form.querySelectorAll("input[data-extensions]"));
    var message = form.querySelector(".js-duplicates");
    function check() {
      var owners = {};
      inputs.forEach(function (input) {
        input.value.split(/[\s,;]+/).filter(Boolean).forEach(function (ext) {
          (owners[ext] = owners[ext] || []).push(input);
        });
      });
      var dups = Object.keys(owners).filter(function (ext) { return owners[ext].length > 1; });
      inputs.forEach(function (input) { input.classList.remove("dup"); });
      dups.forEach(function (ext) { owners[ext].forEach(function (i) { i.classList.add("dup"); }); });
      if (message) {
        message.hidden = dups.length === 0;
        message.textContent = dups.length ? message.dataset.message + " " + dups.join(", ") : "";
      }
    }
    inputs.forEach(function (input) { input.addEventListener("input", check); });
    check();
  });
})();
