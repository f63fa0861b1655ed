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
// Edit controls carry data-edit (on the control, or on a fieldset for all
// its controls).  On a follower they are marked read-only: aria-disabled,
// dimmed, and described by the read-only banner.  They stay focusable and
// operable on purpose: a change tried anyway is sent to this node, which
// refuses it (409 FOLLOWER_READONLY), and its message is shown where the
// change was made — the user guide's check of the follower guard.
// Controls with data-local (e.g. Cancel) never send anything: left alone.

const CONTROLS = "input, select, textarea, button";
const NOTE = "Read-only: this node is a follower. Make changes on the leader/VIP.";
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
  for (const el of root.querySelectorAll("[data-edit]")) mark(el);
}

function mark(el) {
  const controls = el.matches(CONTROLS) ? [el] : el.querySelectorAll(CONTROLS);
  for (const c of controls) {
    if (c.dataset.local !== undefined) continue;
    if (readOnly && c.dataset.ro === undefined) {
      c.dataset.ro = c.title || "";
      c.setAttribute("aria-disabled", "true");
      c.setAttribute("aria-describedby", tokens(c.getAttribute("aria-describedby")).concat("readonly-note").join(" "));
      if (!c.title) c.title = NOTE;
    } else if (!readOnly && c.dataset.ro !== undefined) {
      c.removeAttribute("aria-disabled");
      const rest = tokens(c.getAttribute("aria-describedby")).filter((t) => t !== "readonly-note");
      if (rest.length) c.setAttribute("aria-describedby", rest.join(" "));
      else c.removeAttribute("aria-describedby");
      if (c.dataset.ro) c.title = c.dataset.ro;
      else c.removeAttribute("title");
      delete c.dataset.ro;
    }
  }
}

function tokens(value) {
  return (value || "").split(/\s+/).filter(Boolean);
}

/** Mark elements as edit controls (marked read-only on followers). */
export function edit(el) {
  el.dataset.edit = "";
  mark(el);
  return el;
}

/**
 * For a control that sends its change at once (a checkbox, a select):
 * wrap the request so a refused change puts the control back as it was.
 */
export function attempt(control, previous, fn) {
  return async () => {
    try {
      return await fn();
    } catch (err) {
      if (control.type === "checkbox") control.checked = previous;
      else control.value = previous;
      throw err;
    }
  };
}
