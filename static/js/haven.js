// Progressive enhancement only: every page works without this file.
"use strict";

document.documentElement.classList.add("js");

document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
    target.form.requestSubmit();
  }
  // A list that belongs to a radio choice ("another agency"): picking from it picks the radio.
  if (target instanceof HTMLSelectElement && target.dataset.checks && target.value) {
    const radio = document.getElementById(target.dataset.checks);
    if (radio) {
      radio.checked = true;
    }
  }
  if (target instanceof HTMLSelectElement && target.form) {
    showFieldsFor(target.form);
  }
});

// A field marked data-shown-for="name:value" only matters when the form's field "name"
// holds "value" (the quarter, for the quarterly report): hide it otherwise.
function showFieldsFor(form) {
  form.querySelectorAll("[data-shown-for]").forEach((field) => {
    const [name, value] = field.dataset.shownFor.split(":");
    const control = form.elements.namedItem(name);
    const wrapper = field.closest(".field") || field;
    const invalid = field.getAttribute("aria-invalid") === "true";
    wrapper.hidden = Boolean(control) && control.value !== value && !invalid;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector(".error-summary");
  if (summary) {
    summary.focus();
  }
  document.querySelectorAll("form").forEach(showFieldsFor);
  document.querySelectorAll("[data-copy-target]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.copyTarget);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent.trim());
      }
    });
  });
});
