// Shared interaction helpers: toasts, form submission with busy state and
// plain-words errors, confirmation dialogs, copy to clipboard, and the
// read-only switch for followers.

import { errorExtras, h, replace } from "./dom.js";

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
    // A second submit while the first is on its way (a double click, Enter
    // pressed twice on a slow link) is ignored: the buttons are disabled,
    // but Enter in a field or a script's requestSubmit() is not stopped by that.
    if (form.getAttribute("aria-busy") === "true") return;
    let sent = false;
    await busy(form, errors, async () => {
      const result = await fn(new FormData(form), event.submitter);
      sent = true;
      return result;
    });
    // e.g. drafts.js drops the form's kept values
    if (sent) form.dispatchEvent(new Event("sent"));
  });
}

/**
 * A change made from one row of a list (toggle, mode, delete): the row's
 * control is disabled while the request runs (no second click sends it
 * again), and a refused change is shown right under that row (role=alert),
 * not in a box above a long list; the row keeps its state.  ``fn`` returns
 * a promise; resolves true when it succeeded.
 */
export async function rowAction(control, list, fn) {
  const row = rowOf(control);
  const key = control.getAttribute("aria-label");
  clearRowError(row);
  shownErrors(list).delete(key);
  let failed = null;
  const sink = { set: (err) => { failed = err; } };
  // busy() disables the list's buttons (and gives a pressed one its focus
  // back); a box or a select is disabled here, and keeps its focus too.
  const own = control.tagName !== "BUTTON" && !control.disabled;
  const hadFocus = document.activeElement === control;
  if (own) control.disabled = true;
  try {
    await busy(list, sink, fn);
  } finally {
    if (own && control.isConnected) {
      control.disabled = false;
      const lost = !document.activeElement || document.activeElement === document.body;
      if (hadFocus && lost) control.focus();
    }
  }
  if (failed) {
    shownErrors(list).set(key, failed);
    const now = findControl(list, key) || control;
    if (now.isConnected) showRowError(rowOf(now), failed, list, key);
  }
  return !failed;
}

/**
 * After a list was drawn again (a reload, the blocklists' 2 s poll): the
 * errors still shown go back under their rows (found by their control's
 * label); those of rows that are gone are forgotten.
 */
export function keepRowErrors(list) {
  const errors = shownErrors(list);
  for (const [key, err] of [...errors]) {
    const control = findControl(list, key);
    if (control) showRowError(rowOf(control), err, list, key);
    else errors.delete(key);
  }
}

function shownErrors(list) {
  if (!list.rowErrors) list.rowErrors = new Map();
  return list.rowErrors;
}

function findControl(list, key) {
  return [...list.querySelectorAll("[aria-label]")].find((el) => el.getAttribute("aria-label") === key) || null;
}

function rowOf(control) {
  return control.closest("tr") || control.closest("li") || control.parentElement;
}

function clearRowError(row) {
  const next = row && row.nextElementSibling;
  if (next && next.classList.contains("row-error")) next.remove();
}

function showRowError(row, err, list, key) {
  clearRowError(row);
  const box = h("div", { class: "alert error", role: "alert" });
  box.set = (e) => { replace(box, e.message || String(e), errorExtras(e)); };
  box.set(err);
  const close = h("button", { class: "btn small", type: "button", "data-local": "", "aria-label": "Dismiss this error",
    onclick: () => { shownErrors(list).delete(key); clearRowError(row); } }, "Dismiss");
  let el;
  if (row.tagName === "TR") {
    el = h("tr", { class: "row-error" }, h("td", { colspan: row.children.length || 1 },
      h("div", { class: "row-error-box" }, box, close)));
  } else {
    el = h("div", { class: "row-error" }, h("div", { class: "row-error-box" }, box, close));
  }
  row.after(el);
  el.scrollIntoView({ block: "nearest" });
}

/** Run fn with the buttons in ``scope`` disabled; show any error. */
export async function busy(scope, errors, fn) {
  if (errors) errors.set(null);
  clearFieldErrors(scope);
  const buttons = [...scope.querySelectorAll("button:not(:disabled)")];
  // A button pressed from the keyboard loses the focus when it is disabled
  // meanwhile: give it back afterwards (unless something else took it), so
  // the next Tab goes on from there, not from the top of the page.
  const focused = buttons.includes(document.activeElement) ? document.activeElement : null;
  buttons.forEach((b) => { b.disabled = true; });
  scope.setAttribute("aria-busy", "true");
  try {
    return await fn();
  } catch (err) {
    if (errors) errors.set(err);
    else toast(err.message, "error", 8000);
    const details = (err && err.details) || [];
    showFieldErrors(scope, details);
    // The summary names the field as the form does ("IP addresses and
    // subnets: ..."), not by the API's path ("addresses.0: ...").
    const first = details[0];
    const input = first && controlFor(scope, first.field);
    const label = input && input.labels && input.labels[0] ? input.labels[0].textContent.trim() : "";
    if (errors && label && first.message && err.message === `${first.field}: ${first.message}`) {
      errors.textContent = `${label}: ${first.message}`;
    }
    return undefined;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    scope.removeAttribute("aria-busy");
    applyReadOnly(scope);
    const lost = !document.activeElement || document.activeElement === document.body;
    if (focused && lost) {
      if (focused.isConnected) {
        focused.focus();
      } else {
        // its row is gone (deleted, or the list redrawn): keep the place
        // in the list, so the next Tab goes on inside it
        if (!scope.hasAttribute("tabindex")) scope.setAttribute("tabindex", "-1");
        scope.classList.add("focus-anchor");
        scope.focus({ preventScroll: true });
      }
    }
  }
}

/**
 * The control a validation detail names: its field path ("url",
 * "addresses.0", "upstream.timeout") read from the end, skipping list
 * indexes, so "addresses.0" is the addresses box.
 */
export function controlFor(scope, path) {
  const names = String(path || "").split(".").filter((n) => n && !/^\d+$/.test(n)).reverse();
  for (const name of names) {
    const el = scope.querySelector(`[name="${CSS.escape(name)}"]`);
    if (el) return el;
  }
  return null;
}

/**
 * Mark each control named in the API's validation details (aria-invalid)
 * and put the detail's message right under it, as its description; focus
 * the first one, so Enter-and-retype works without hunting for the field.
 */
function showFieldErrors(scope, details) {
  let first = null;
  for (const d of details) {
    const input = controlFor(scope, d.field);
    if (!input || !d.message) continue;
    input.setAttribute("aria-invalid", "true");
    const id = `${input.id || input.name}-error`;
    let note = scope.querySelector(`#${CSS.escape(id)}`);
    if (!note) {
      note = h("p", { class: "field-error", id, "data-field-error": "" });
      const box = input.closest(".field");
      if (box) box.append(note); // under the control and its hint
      else input.after(note);
      input.setAttribute("aria-describedby", tokens(input.getAttribute("aria-describedby")).concat(id).join(" "));
    }
    note.textContent = note.textContent ? `${note.textContent} ${d.message}` : d.message;
    first = first || input;
  }
  if (first && !first.matches(":focus")) first.focus();
}

function clearFieldErrors(scope) {
  for (const el of scope.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const note of scope.querySelectorAll("[data-field-error]")) {
    for (const c of scope.querySelectorAll(`[aria-describedby~="${CSS.escape(note.id)}"]`)) {
      const rest = tokens(c.getAttribute("aria-describedby")).filter((t) => t !== note.id);
      if (rest.length) c.setAttribute("aria-describedby", rest.join(" "));
      else c.removeAttribute("aria-describedby");
    }
    note.remove();
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
