// twinserve's touches to Locust's start form (Locust 2.47's React UI; the browser tests check each of them):
// preselect the default target, open the custom parameters (the Rate lives there) and say what Users and
// Ramp up mean here. Everything else is Locust's own UI.
(function () {
  "use strict";
  var cfg = window.twinserveUi || {};
  var NOTE = "twinserve: one user per ticked target, all started at once (set for you when you press Start). " +
    "The load is the Rate of each target (open loop) or its Concurrency (closed loop), in Custom parameters below.";

  function pickerRows() {
    var rows = [];
    document.querySelectorAll("table tr").forEach(function (tr) {
      var box = tr.querySelector("input[type=checkbox]");
      if (box && tr.textContent.indexOf("\u00b7") >= 0) rows.push({ tr: tr, box: box });
    });
    return rows;
  }

  function showInList(tr) {
    // Scroll the picker's own list (not the page) so the preselected row is in view.
    for (var box = tr.parentElement; box && box !== document.body; box = box.parentElement) {
      if (box.scrollHeight > box.clientHeight + 4 && /(auto|scroll)/.test(getComputedStyle(box).overflowY)) {
        box.scrollTop += tr.getBoundingClientRect().top - box.getBoundingClientRect().top - 50;
        return;
      }
    }
  }

  function preselect() {
    // Once per start form: Locust mounts a fresh picker (everything ticked) for each new test.
    var rows = pickerRows();
    var table = rows.length && rows[0].tr.closest("table");
    if (!table || table.dataset.twinservePreselected || !cfg["default"]) return;
    table.dataset.twinservePreselected = "1";
    rows.forEach(function (r) {
      var isDefault = r.tr.textContent.indexOf(cfg["default"]) >= 0;
      if (r.box.checked !== isDefault) r.box.click();
      if (isDefault) showInList(r.tr);
    });
  }

  function annotate() {
    var users = document.querySelector("input[name=userCount]");
    if (users && !document.getElementById("twinserve-users-note")) {
      var note = document.createElement("p");
      note.id = "twinserve-users-note";
      note.textContent = NOTE;
      note.style.cssText = "margin:4px 0 0;font-size:0.85em;color:#b26a00";
      var box = users.closest(".MuiFormControl-root") || users.parentElement;
      box.parentElement.insertBefore(note, box.nextSibling);
      var ramp = document.querySelector("input[name=spawnRate]");
      [users, ramp].forEach(function (el) { if (el) { el.readOnly = true; el.title = NOTE; } });
      var host = document.querySelector("input[name=host]");
      var hostBox = host && (host.closest(".MuiFormControl-root") || host.parentElement);
      if (hostBox) hostBox.style.display = "none"; // each target class carries its own address
    }
    document.querySelectorAll(".MuiAccordionSummary-root").forEach(function (s) {
      if (s.textContent.indexOf("Custom parameters") >= 0 && s.getAttribute("aria-expanded") === "false" &&
          !s.dataset.twinserveOpened) {
        s.dataset.twinserveOpened = "1";
        s.click();
      }
    });
  }

  // The form is (re)mounted whenever a new test is started from the UI; both steps are cheap and idempotent.
  setInterval(function () {
    preselect();
    annotate();
  }, 150);
})();
