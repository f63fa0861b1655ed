// Drafts: what was typed into a form and not sent yet survives the end of
// the session (it expired, or the admin logged out in another tab) and a
// reload of the page.  The values live in this tab's sessionStorage, keyed
// by page path and form; password fields (and names that look like a
// secret) are never stored.  A draft is restored when its page shows its
// form again (after logging in, the login page leads back there), and is
// dropped once the form is sent successfully or the user leaves the page
// on purpose (another page of the UI, Cancel).

import { toast } from "./ui.js";

const PREFIX = "sentinel.draft:";
const SECRET = /pass|secret|token|key|code|cookie|credential/i;
const SKIP_TYPES = new Set(["password", "file", "hidden", "submit", "button", "reset", "image"]);
const live = new Set(); // storage keys of the forms on the current page

function storageKey(name) {
  return `${PREFIX}${location.pathname}#${name}`;
}

function read(key) {
  try {
    const text = sessionStorage.getItem(key);
    return text ? JSON.parse(text) : null;
  } catch {
    return null; // storage disabled or a damaged entry: no draft
  }
}

function write(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
  } catch { /* storage full or disabled: keep working without drafts */ }
}

function remove(key) {
  try { sessionStorage.removeItem(key); } catch { /* disabled */ }
}

function kept(el) {
  return el.name && !SKIP_TYPES.has(el.type) && !SECRET.test(el.name) && el.autocomplete !== "current-password"
    && el.autocomplete !== "new-password";
}

/** {name: [value or checked, ...]} of the form's storable controls, in order. */
export function snapshot(form) {
  const values = {};
  for (const el of form.elements) {
    if (!kept(el)) continue;
    (values[el.name] = values[el.name] || []).push(
      el.type === "checkbox" || el.type === "radio" ? el.checked : el.value);
  }
  return values;
}

function restore(form, values) {
  const seen = {};
  for (const el of form.elements) {
    if (!kept(el) || !Array.isArray(values[el.name])) continue;
    const i = seen[el.name] = (seen[el.name] ?? -1) + 1;
    if (i >= values[el.name].length) continue;
    const v = values[el.name][i];
    if (el.type === "checkbox" || el.type === "radio") {
      if (el.checked === Boolean(v)) continue;
      el.checked = Boolean(v);
    } else {
      if (el.value === String(v)) continue;
      el.value = String(v);
    }
    el.dispatchEvent(new Event("change", { bubbles: false })); // e.g. show the fields it controls
  }
}

/**
 * Keep the form's unsent values as a draft named ``name`` (unique on its
 * page); restore an existing draft now.  Returns true when one was restored.
 */
export function keepDraft(form, name) {
  const key = storageKey(name);
  form.dataset.draft = key;
  const saved = read(key);
  if (saved) restore(form, saved);
  const save = () => write(key, snapshot(form));
  form.addEventListener("input", save);
  form.addEventListener("change", save);
  // sent (onSubmit in ui.js) or emptied: nothing left to keep
  form.addEventListener("sent", () => remove(key));
  form.addEventListener("reset", () => remove(key));
  live.add(key);
  if (saved) toast("Restored what you had typed and not sent yet.");
  return Boolean(saved);
}

/** Whether this page has a draft called ``name`` (e.g. to reopen its editor). */
export function hasDraft(name) {
  return read(storageKey(name)) !== null;
}

/** Drop the form's draft (it was sent, or the user cancelled it). */
export function dropDraft(form) {
  if (form && form.dataset.draft) remove(form.dataset.draft);
}

/**
 * The page is being left.  ``keep``: because the session ended (the
 * drafts wait for the login); otherwise the user left on purpose and the
 * drafts of this page are dropped.
 */
export function leavePage(keep) {
  if (!keep) for (const key of live) remove(key);
  live.clear();
}
