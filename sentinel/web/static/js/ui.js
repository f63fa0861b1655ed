// Shared interaction helpers: toasts, form submission with busy state and
// plain-words errors, confirmation dialogs, copy to clipboard, and the
// read-only switch for followers.

import { h } from "./dom.js";

/** A short message in the corner (role=status, announced politely). */
export function toast(message, kind = "ok", ms = 5000) {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}

/**
 * Run fn(formData) on submit: buttons disabled meanwhile, errors shown in
 * ``errors`` (an errorBox) with the API's message, fields named in the
 * API's validation details marked aria-invalid.
 */
export function onSubmit(form, errors, fn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(form, errors, () => fn(new FormData(form), event.submitter));
  });
}

/** Run fn with the buttons in ``scope`` disabled; show any error. */
export async function busy(scope, errors, fn) {
  if (errors) errors.set(null);
  for (const el of scope.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const buttons = [...scope.querySelectorAll("button:not(:disabled)")];
  buttons.forEach((b) => { b.disabled = true; });
  scope.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } catch (err) {
    if (errors) errors.set(err);
    else toast(err.message, "error", 8000);
    for (const d of (err && err.details) || []) {
      const name = String(d.field || "").split(".").pop();
      const input = name && scope.querySelector(`[name="${CSS.escape(name)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
    }
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    scope.removeAttribute("aria-busy");
    applyReadOnly(scope);
  }
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(message, { confirm = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    const ok = h("button", { class: `btn ${danger ? "danger" : "primary"}`, value: "ok" }, confirm);
    const dialog = h("dialog", { "aria-label": "Confirm" },
      h("form", { method: "dialog" },
        h("p", {}, message),
        h("div", { class: "row end" },
          h("button", { class: "btn", value: "cancel" }, "Cancel"), ok)));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    ok.focus();
  });
}

/**
 * Copy text.  navigator.clipboard needs a secure context (https or
 * localhost), which a LAN address over http is not: fall back to
 * selecting the text and the copy command.
 */
export async function copyText(text, source) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch { /* fall through */ }
  }
  const area = source || h("textarea", { class: "visually-hidden", readonly: true });
  if (!source) { area.value = text; document.body.append(area); }
  area.focus();
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch { ok = false; }
  if (!source) area.remove();
  return ok;
}

// ---- read-only (follower) ----
// Edit controls carry data-edit; on a follower they are disabled.

let readOnly = false;

export function setReadOnly(value) {
  readOnly = Boolean(value);
  document.body.classList.toggle("readonly", readOnly);
  applyReadOnly(document);
}

export function isReadOnly() {
  return readOnly;
}

export function applyReadOnly(root) {
  for (const el of root.querySelectorAll("[data-edit]")) {
    if (readOnly && !el.disabled) {
      el.disabled = true;
      el.dataset.roDisabled = "";
    } else if (!readOnly && el.dataset.roDisabled !== undefined) {
      el.disabled = false;
      delete el.dataset.roDisabled;
    }
  }
}

/** Mark elements as edit controls (disabled on followers). */
export function edit(el) {
  el.dataset.edit = "";
  if (readOnly && !el.disabled) {
    el.disabled = true;
    el.dataset.roDisabled = "";
  }
  return el;
}
