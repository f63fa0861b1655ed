// Query log: newest first, filters (client, domain, decision, time range),
// the reason of every block, one-click allow/block of a domain.

import { api, listOf, query } from "../api.js";
import { errorBox, field, h, replace, select } from "../dom.js";
import { dateTime, duration, fromLocalInput, time, toLocalInput } from "../format.js";
import { createRule } from "../filtering/rules.js";
import { busy, edit, toast } from "../ui.js";
import { badge, pageHead } from "../widgets.js";

export const title = "Query log";

const DECISIONS = [
  ["", "Any decision"], ["blocked", "Blocked"], ["allowed", "Allowed by rule"],
  ["forwarded", "Forwarded"], ["cached", "From cache"], ["rewritten", "Rewritten"],
  ["shadow-blocked", "Shadow-blocked"], ["local", "Answered by Sentinel itself"],
];
const PAGE = 100;
const FILTERS = ["client", "domain", "decision", "from", "to"];

export async function render(ctx) {
  const errors = errorBox();
  const body = h("div", { "aria-live": "polite" });
  const more = h("button", { class: "btn", type: "button", hidden: true }, "Load older");
  let rows = [];
  let cursor = null;
  // The filters of the rows shown: "Load older" goes on with these, even
  // when the form was changed meanwhile without Search (the older page of
  // other filters would be mixed into the list).
  let shownFilters = null;
  const names = await reasonNames();

  const p = ctx.params;
  const form = h("form", { class: "card", role: "search", "aria-label": "Filter the query log" },
    h("div", { class: "fields" },
      field("Client", h("input", { name: "client", type: "search", value: p.get("client") || "", placeholder: "IP or name" })),
      field("Domain contains", h("input", { name: "domain", type: "search", value: p.get("domain") || "", autocapitalize: "off", spellcheck: "false" })),
      field("Decision", select({ name: "decision" }, DECISIONS, p.get("decision") || "")),
      field("From", h("input", { name: "from", type: "datetime-local", value: p.get("from") || "" })),
      field("To", h("input", { name: "to", type: "datetime-local", value: p.get("to") || "" }))),
    h("div", { class: "row" },
      h("button", { class: "btn primary", type: "submit" }, "Search"),
      h("button", { class: "btn", type: "button", onclick: () => { form.reset(); clearInputs(form); search(); } }, "Clear"),
      h("button", { class: "btn", type: "button", onclick: () => search() }, "Refresh"),
      h("button", {
        class: "btn", type: "button", onclick: () => {
          form.elements.from.value = toLocalInput(new Date(Date.now() - 3600e3));
          form.elements.to.value = "";
          search();
        },
      }, "Last hour")));
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  more.addEventListener("click", () => load(true));

  function filters() {
    const f = {};
    for (const name of FILTERS) f[name] = form.elements[name].value.trim();
    return f;
  }

  function apiQuery(f) {
    const from = fromLocalInput(f.from);
    const to = fromLocalInput(f.to);
    return {
      client: f.client, domain: f.domain, decision: f.decision,
      since: from ? from.getTime() / 1000 : "", until: to ? to.getTime() / 1000 : "",
      limit: PAGE,
    };
  }

  function search() {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(filters())) if (v) params.set(k, v);
    ctx.setQuery(params);
    return load(false);
  }

  async function load(older) {
    await busy(ctx.root, errors, async () => {
      const f = older && shownFilters ? shownFilters : filters();
      const q = apiQuery(f);
      if (older && cursor !== null) Object.assign(q, cursor);
      const data = await api.get("/api/query-logs" + query(q));
      const page = listOf(data, "items");
      rows = older ? rows.concat(page) : page;
      shownFilters = f;
      cursor = data.next_before_id ? { before_id: data.next_before_id } : null;
      more.hidden = cursor === null;
      draw();
    });
  }

  function draw() {
    if (!rows.length) {
      replace(body, h("p", { class: "empty" }, "No queries match."));
      return;
    }
    replace(body, h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Queries, newest first"),
      h("thead", {}, h("tr", {}, ["Time", "Client", "Domain", "Type", "Decision", "Reason", "Answer", "Took", ""].map((t) =>
        h("th", { scope: "col" }, t || h("span", { class: "visually-hidden" }, "Actions"))))),
      h("tbody", {}, rows.map(row)))));
  }

  function row(r) {
    const decision = r.decision || "";
    const domain = r.qname || "";
    const blocked = decision === "blocked" || decision === "shadow-blocked";
    const when = r.ts;
    const clientName = r.client_name;
    const clientIp = r.client_ip;
    return h("tr", { class: blocked ? "blocked" : null },
      h("td", { class: "nowrap" }, h("time", { title: dateTime(when) }, time(when))),
      h("td", {}, clientName ? [clientName, h("div", { class: "small muted" }, clientIp)] : clientIp),
      h("td", { class: "mono domain" }, domain),
      h("td", {}, r.qtype_name || String(r.qtype ?? "")),
      h("td", {}, badge(decision)),
      h("td", { class: "small" }, explain(r.reason, names)),
      h("td", { class: "small" }, [r.rcode_name || "", r.upstream ? h("div", { class: "muted" }, r.upstream) : null]),
      h("td", { class: "num" }, duration(r.duration_ms)),
      h("td", { class: "actions" }, domain ? edit(h("button", {
        class: `btn small${blocked ? "" : " danger"}`, type: "button",
        "aria-label": `${blocked ? "Allow" : "Block"} ${domain}`,
        onclick: () => quickRule(domain, blocked ? "allow" : "block"),
      }, blocked ? "Allow" : "Block")) : ""));
  }

  async function quickRule(domain, action) {
    // The answer shows in the corner, as a toast, like the success: the
    // error box above the table is off-screen when the row is far down.
    await busy(ctx.root, null, async () => {
      await createRule(domain, action, { comment: "from the query log" });
      toast(`${action === "allow" ? "Allowed" : "Blocked"} ${domain} (a rule was added).`);
    });
  }

  ctx.root.append(pageHead("Query log"), form, errors, h("section", { class: "card", "aria-label": "Queries" }, body, h("div", { class: "row" }, more)));
  await load(false);
}

function clearInputs(form) {
  for (const el of form.elements) if (el.name) el.value = "";
}

/** Names for reasons like "blocklist:3" and "rule:7" (best effort). */
async function reasonNames() {
  const names = new Map();
  const [lists, rules, clients, rewrites] = await Promise.all(["/api/blocklists", "/api/rules", "/api/clients", "/api/dns/rewrites"]
    .map((p) => api.get(p, { quiet: true }).catch(() => [])));
  for (const b of listOf(lists, "blocklists")) names.set(`blocklist:${b.id}`, `blocklist ${b.name}`);
  for (const r of listOf(rules, "rules")) names.set(`rule:${r.id}`, `rule ${r.pattern}`);
  for (const c of listOf(clients, "clients")) names.set(`client:${c.id}`, `client ${c.name}`);
  for (const r of listOf(rewrites, "rewrites")) names.set(`rewrite:${r.id}`, `rewrite ${r.domain} → ${r.answer}`);
  return names;
}

function explain(reason, names) {
  if (!reason) return "";
  const [kind, id, ...rest] = String(reason).split(":");
  const known = names.get(`${kind}:${id}`);
  if (!known) return reason;
  return h("span", { title: reason }, [known, ...rest].join(": "));
}
