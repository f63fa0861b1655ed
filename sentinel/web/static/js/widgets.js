// Building blocks pages share: page heading, cards, tables, tabs, badges.

import { h } from "./dom.js";

export function pageHead(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), actions);
}

/** A titled card section (labelled for screen readers). */
export function card(title, ...content) {
  const id = "c-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { class: "card", "aria-labelledby": id },
    h("h2", { id }, title), content);
}

/**
 * A table: columns = [{label, cell: row => node|string, class, hidden}],
 * an empty message when there are no rows.  Wide tables scroll sideways
 * on a phone instead of breaking the layout; a ``stacked`` one shows each
 * row as a block of "label value" lines there instead, so its last columns
 * (a list's status and its failure, the Delete button) are not off-screen.
 */
export function dataTable(columns, rows, { empty = "Nothing yet.", rowClass, caption, stacked = false } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", { class: stacked ? "stacked" : null },
    caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) =>
      h("th", { class: c.class, scope: "col" }, c.hidden ? h("span", { class: "visually-hidden" }, c.label) : c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", { class: rowClass ? rowClass(row) : null },
      columns.map((c) => h("td", { class: c.class, "data-label": c.hidden ? null : c.label }, c.cell(row))))))));
}

/** Tabs as links (each tab is its own URL): [[path, label], ...]. */
export function tabs(label, items, currentPath) {
  return h("nav", { class: "tabs", "aria-label": label },
    items.map(([path, text]) => h("a", {
      href: path, "aria-current": path === currentPath ? "page" : null,
    }, text)));
}

const KINDS = {
  blocked: "bad", "shadow-blocked": "warn", allowed: "ok", rewritten: "info",
  cached: "ok", forwarded: "plain", block: "bad", allow: "ok",
  enabled: "ok", disabled: "plain", shadow: "warn",
  leader: "ok", follower: "info", standalone: "plain", error: "bad", ok: "ok",
};

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || KINDS[text] || "plain"}` }, text);
}

/** Key/value list: [[label, value], ...] (null values skipped). */
export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p && p[1] !== null && p[1] !== undefined)
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function loading() {
  return h("p", { class: "muted", role: "status" }, "Loading…");
}
