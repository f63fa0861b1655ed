// Tiny DOM helpers.  Everything is built with createElement and text
// nodes (never parsed HTML strings), so data from the API can never become markup.

const PROPS = new Set(["value", "checked", "disabled", "selected", "indeterminate"]);

/** h("button", {class: "btn", onclick: fn}, "Save") -> element */
export function h(tag, props, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export const svg = (tag, props, ...children) => h("svg:" + tag, props, ...children);

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of el. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let counter = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix = "f") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form field: field("Name", h("input", {...}), "hint"). */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = id + "-hint";
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/** A checkbox with its label to the right. */
export function checkbox(label, props = {}) {
  const id = props.id || uid();
  return h("div", { class: "field inline" },
    h("input", { type: "checkbox", ...props, id }),
    h("label", { for: id }, label));
}

/** <select> from [[value, label], ...]. */
export function select(props, options, current) {
  return h("select", props, options.map(([value, label]) =>
    h("option", { value, selected: String(value) === String(current) }, label)));
}

let extras = () => null;

/**
 * What an error box shows after an error's message (e.g. a link to the
 * leader under 409 FOLLOWER_READONLY); set by the app: fn(err) -> node|null.
 */
export function setErrorExtras(fn) {
  extras = fn;
}

export function errorExtras(err) {
  return err ? extras(err) : null;
}

/** An error box; set(err) shows an Error's message, set(null) hides it. */
export function errorBox() {
  const el = h("div", { class: "alert error", role: "alert" });
  el.set = (err) => { replace(el, err ? (err.message || String(err)) : "", errorExtras(err)); };
  return el;
}
