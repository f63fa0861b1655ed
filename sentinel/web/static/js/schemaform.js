// A form generated from a JSON schema (the API's own request schema from
// /api/openapi.json), so settings forms cannot drift from what the API
// accepts.  Booleans become checkboxes, enums selects, numbers number
// inputs with their limits, lists of strings a textarea (one per line),
// objects a group.  Fields the API marks readOnly, and write-only secrets
// left empty, are not sent.

import { api } from "./api.js";
import { h, select, uid } from "./dom.js";

export function humanize(key) {
  const words = key.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
  return (words.charAt(0).toUpperCase() + words.slice(1))
    .replace(/\bttl\b/gi, "TTL").replace(/\bdns\b/gi, "DNS").replace(/\bip\b/gi, "IP")
    .replace(/\bedns\b/gi, "EDNS").replace(/\burl\b/gi, "URL").replace(/\bqps\b/gi, "QPS");
}

let openapi = null;

/** The request body schema of METHOD PATH in the OpenAPI document. */
export async function requestSchema(method, path) {
  if (!openapi) openapi = await api.get("/api/openapi.json");
  const op = openapi.paths && openapi.paths[path] && openapi.paths[path][method.toLowerCase()];
  const content = op && op.requestBody && op.requestBody.content;
  const schema = content && content["application/json"] && content["application/json"].schema;
  return schema ? resolve(schema) : null;
}

function resolve(schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return resolve(openapi.components.schemas[name]);
  }
  return schema;
}

function typeOf(schema) {
  const t = schema.type;
  if (Array.isArray(t)) return t.find((x) => x !== "null");
  if (t) return t;
  if (schema.enum) return "enum";
  if (schema.anyOf) return typeOf(schema.anyOf.find((s) => s.type !== "null") || {});
  return "string";
}

/**
 * Build fields for ``schema`` filled with ``value``; returns {el, read}.
 * labels: {key: "Label"}; hints: {key: "text"} (else the schema's description).
 */
export function schemaFields(schema, value = {}, { labels = {}, hints = {}, prefix = "", only = null } = {}) {
  const readers = [];
  const els = [];
  for (const [key, sub] of Object.entries(resolve(schema).properties || {})) {
    if (sub.readOnly || (only && !only.includes(key))) continue;
    const s = resolve(sub);
    const label = labels[prefix + key] || s.title || humanize(key);
    const hint = hints[prefix + key] || s.description || limits(s);
    const current = value ? value[key] : undefined;
    const type = s.enum ? "enum" : typeOf(s);
    const id = uid("s");
    let control;
    let read;
    if (type === "object" && s.properties) {
      const inner = schemaFields(s, current || {}, { labels, hints, prefix: prefix + key + "." });
      els.push(h("fieldset", { class: "card" }, h("legend", { class: "label" }, label), inner.el));
      readers.push([key, inner.read]);
      continue;
    } else if (type === "boolean") {
      control = h("input", { type: "checkbox", id, name: key, checked: Boolean(current) });
      els.push(h("div", { class: "field inline" }, control, h("label", { for: id }, label),
        hint ? h("span", { class: "hint" }, `(${hint})`) : null));
      readers.push([key, () => control.checked]);
      continue;
    } else if (type === "enum") {
      const values = s.enum || [];
      control = select({ id, name: key }, values.map((v) => [v, String(v)]), current);
      read = () => control.value;
    } else if (type === "integer" || type === "number") {
      control = h("input", { type: "number", id, name: key, value: current ?? "", min: s.minimum, max: s.maximum, step: type === "integer" ? 1 : "any" });
      read = () => (control.value === "" ? undefined : Number(control.value));
    } else if (type === "array") {
      control = h("textarea", { id, name: key, rows: 3 });
      control.value = (current || []).join("\n");
      const itemType = typeOf(resolve(s.items || {}));
      read = () => control.value.split(/\n+/).map((x) => x.trim()).filter(Boolean)
        .map((x) => (itemType === "integer" || itemType === "number" ? Number(x) : x));
    } else {
      const secret = s.writeOnly || /password|secret/i.test(key);
      control = h("input", {
        type: secret ? "password" : "text", id, name: key, value: secret ? "" : current ?? "",
        autocomplete: secret ? "new-password" : "off", placeholder: secret && current ? "(set; leave empty to keep)" : null,
      });
      read = () => (secret && control.value === "" ? undefined : control.value);
    }
    const hintId = id + "-hint";
    if (hint) control.setAttribute("aria-describedby", hintId);
    els.push(h("div", { class: "field" }, h("label", { for: id }, label), control,
      hint ? h("p", { class: "hint", id: hintId }, hint) : null));
    readers.push([key, read]);
  }
  return {
    count: readers.length,
    el: h("div", { class: "fields" }, els),
    read: () => {
      const out = {};
      for (const [key, fn] of readers) {
        const v = fn();
        if (v !== undefined) out[key] = v;
      }
      return out;
    },
  };
}

function limits(s) {
  if (s.minimum !== undefined && s.maximum !== undefined) return `${s.minimum} to ${s.maximum}`;
  return "";
}
