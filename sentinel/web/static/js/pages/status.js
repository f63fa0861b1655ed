// Status: this node at a glance — cluster role and sync freshness,
// readiness, DNS and storage health, version.

import { api } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { dateTime, duration, number, toDate } from "../format.js";
import { renderPeers, renderStatus } from "../cluster/status.js";
import { humanize } from "../schemaform.js";
import { badge, card, dataTable, kv, pageHead } from "../widgets.js";

export const title = "Status";

function uptime(seconds) {
  const s = Math.floor(seconds || 0);
  const d = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hours} h`;
  if (hours) return `${hours} h ${m} min`;
  return `${m} min ${s % 60} s`;
}

// Fields of a component that are moments (epoch seconds or ISO text).
const MOMENT = /(^|_)(at|until|from|saved|since|change)$/;

/** A component's field as people read it: times as dates, nothing as "–". */
export function componentValue(key, value) {
  if (value === null || value === undefined || value === "") return "–";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (MOMENT.test(key) && toDate(value)) return dateTime(value);
  return typeof value === "number" ? number(value) : String(value);
}

function scalarPairs(obj) {
  return Object.entries(obj || {})
    .filter(([, v]) => v === null || ["string", "number", "boolean"].includes(typeof v))
    .map(([k, v]) => [humanize(k), componentValue(k, v)]);
}

function dnsCard(dns) {
  const pairs = [
    ["Queries", `${number(dns.queries)} (UDP ${number(dns.queries_udp)}, TCP ${number(dns.queries_tcp)})`],
    ["Cache", `${number(dns.cache_hits)} hits, ${number(dns.cache_misses)} misses, ${number(dns.cache_entries)} entries`],
    ["Served stale", number(dns.cache_stale)],
    ["Rate limited", number(dns.rate_limited)],
    ["SERVFAIL / FORMERR", `${number(dns.servfail)} / ${number(dns.formerr)}`],
  ];
  const ups = Object.entries(dns.upstreams || {}).map(([spec, u]) => ({ spec, ...u }));
  return [kv(pairs), ups.length ? dataTable([
    { label: "Upstream", cell: (u) => h("code", {}, u.spec) },
    { label: "Queries", class: "num", cell: (u) => number(u.queries) },
    { label: "Answers", class: "num", cell: (u) => number(u.answers) },
    { label: "Errors", class: "num", cell: (u) => number(Object.values(u.errors || {}).reduce((a, b) => a + b, 0)) },
    { label: "Mean latency", class: "num", cell: (u) => (u.latency_count ? duration((1000 * u.latency_sum) / u.latency_count) : "–") },
  ], ups, { caption: "Upstreams" }) : null];
}

/** The body of a health/readiness answer (also of its 503), or null. */
function answer(result) {
  const body = result.error ? result.error.data : result;
  return body && typeof body.ok === "boolean" ? body : null;
}

export async function render(ctx) {
  const cluster = h("div", { id: "cluster-status" });
  const peers = h("div");
  const system = h("div");
  const components = h("div", { class: "grid" });
  const errors = errorBox();

  async function load() {
    errors.set(null);
    try {
      await renderStatus(cluster);
    } catch (err) {
      errors.set(err);
    }
    await renderPeers(peers);
    const [ready, health, sys] = await Promise.all([
      api.get("/api/cluster/ready", { quiet: true }).catch((e) => ({ error: e })),
      api.get("/api/health", { quiet: true }).catch((e) => ({ error: e })),
      api.get("/api/system/status").catch((e) => ({ error: e })),
    ]);
    // Both answer 503 with their usual body when not ok: read it, not the error.
    const readyBody = answer(ready);
    const healthBody = answer(health);
    const pairs = [
      ["Ready (for keepalived)", readyBody
        ? [badge(readyBody.ok ? "ready" : "not ready", readyBody.ok ? "ok" : "bad"), readyBody.reason ? ` ${readyBody.reason}` : ""]
        : ready.error.message],
      ["Health", healthBody ? badge(healthBody.ok ? "ok" : "degraded", healthBody.ok ? "ok" : "bad") : health.error.message],
      ...Object.entries((healthBody && healthBody.checks) || {}).map(([k, v]) => [`Check: ${k}`, badge(v ? "ok" : "failing", v ? "ok" : "bad")]),
      // What is wrong, in one line each (a bad role file, a node key that does not
      // open the stored secrets, a database that cannot be opened, the
      // last-known-good policy DNS uses meanwhile); also on a 503.
      ...Object.entries((healthBody || {}).problems || {})
        .map(([k, v]) => [`Problem: ${humanize(k)}`, h("div", { class: "alert error problem" }, v)]),
    ];
    const extra = [];
    if (sys.error) {
      pairs.push(["System", sys.error.message]);
    } else {
      pairs.push(
        ["Version", `Sentinel ${sys.version} (Python ${sys.python}, Twisted ${sys.twisted})`],
        ["Up for", h("span", { title: dateTime(sys.started_at) }, uptime(sys.uptime_seconds))],
        ["Database", `${sys.store_backend === "postgres" ? "PostgreSQL" : "SQLite"}${sys.store_available ? "" : " (unreachable)"}`],
        ["Configuration revision", number(sys.revision)],
      );
      for (const [name, comp] of Object.entries(sys.components || {})) {
        if (name === "cluster") continue; // shown in the cluster card
        if (name === "dns" && !comp.error) extra.push(card("DNS server", dnsCard(comp)));
        else extra.push(card(humanize(name), comp.error ? h("p", { class: "alert error" }, comp.error) : kv(scalarPairs(comp))));
      }
    }
    replace(components, extra);
    replace(system, kv(pairs));
  }

  ctx.root.append(pageHead("Status", h("button", { class: "btn", type: "button", onclick: load }, "Refresh")),
    errors,
    h("div", { class: "grid" },
      card("Cluster", cluster, h("p", {}, h("a", { href: "/cluster" }, "Cluster / HA setup"))),
      card("This node", system)),
    h("div", { class: "stack section-gap" }, components, card("VRRP peers", peers)));
  ctx.every(load, 5000);
  await load();
}
