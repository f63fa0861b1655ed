// DNS settings: upstreams, cache, allowed client networks, rate limit,
// TCP limits.  The fields follow the API's own schema (OpenAPI), so the
// form cannot drift from what the API accepts.  The blocking response is
// under Filtering -> Blocking mode.

import { api } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { requestSchema, schemaFields } from "../schemaform.js";
import { dropDraft, keepDraft } from "../drafts.js";
import { edit, onSubmit, toast } from "../ui.js";
import { badge, card, dataTable, pageHead } from "../widgets.js";

export const title = "DNS settings";

const GROUPS = [
  ["Upstream servers", ["upstreams", "upstream_timeout_ms"]],
  ["Names that stay on the LAN", ["forward_private_reverse", "forward_single_label", "lan_upstreams"]],
  ["Cache", ["cache_size", "cache_min_ttl", "cache_max_ttl", "cache_max_negative_ttl", "serve_stale"]],
  ["Who may query", ["allowed_networks", "local_networks", "rate_limit_qps", "rate_limit_burst", "rate_limit_exempt"]],
  ["TCP", ["tcp_idle_timeout", "tcp_max_connections", "tcp_max_connections_per_client"]],
];
const ELSEWHERE = ["blocking_mode", "blocked_ttl"];

const LABELS = {
  upstreams: "Upstream DNS servers",
  upstream_timeout_ms: "Upstream timeout (ms)",
  forward_private_reverse: "Forward reverse lookups of private addresses to the upstreams",
  forward_single_label: "Forward single-label names (e.g. printer) to the upstreams",
  lan_upstreams: "DNS server of the LAN (e.g. the router)",
  cache_size: "Cache size (answers)",
  cache_min_ttl: "Minimum TTL (s)",
  cache_max_ttl: "Maximum TTL (s)",
  cache_max_negative_ttl: "Maximum negative TTL (s)",
  serve_stale: "Serve stale answers when every upstream fails",
  allowed_networks: "Allowed client networks",
  local_networks: "Also answer the networks this server is attached to",
  rate_limit_qps: "Rate limit per client (queries/s)",
  rate_limit_burst: "Rate limit burst",
  rate_limit_exempt: "Exempt from the rate limit",
  tcp_idle_timeout: "TCP idle timeout (s)",
  tcp_max_connections: "TCP connections at most",
  tcp_max_connections_per_client: "TCP connections per client at most",
};
const HINTS = {
  upstreams: "One per line, tried in order: 9.9.9.9 or 9.9.9.9:5353 (UDP, TCP when truncated), tcp://IP, tls://NAME#IP (DNS over TLS), https://NAME/dns-query#IP (DNS over HTTPS). Empty: the start-up list.",
  allowed_networks: "One network per line (CIDR). Loopback may always query.",
  local_networks: "Clients on the same link as this server (the prefixes of its own addresses, e.g. an IPv6 global prefix), followed as addresses change. Turn off on a host whose network is shared with strangers (a rented server).",
  rate_limit_exempt: "Networks without a rate limit, one per line.",
  lan_upstreams: "Asked, instead of answering \"no such name\", about private reverse lookups and single-label names that are not forwarded, and about names under home.arpa and local; never the public upstreams. One per line, like the upstreams. Empty: answered here.",
};

export async function render(ctx) {
  const errors = errorBox();
  const [settings, apiSchema] = await Promise.all([
    api.get("/api/dns/settings"),
    requestSchema("PUT", "/api/dns/settings").catch(() => null),
  ]);
  const schema = apiSchema || inferSchema(settings);
  const known = GROUPS.flatMap(([, keys]) => keys).concat(ELSEWHERE);
  const rest = Object.keys(schema.properties || {}).filter((k) => !known.includes(k));
  const groups = rest.length ? GROUPS.concat([["Other", rest]]) : GROUPS;
  const parts = groups.map(([title, only]) => [title, schemaFields(schema, settings, { labels: LABELS, hints: HINTS, only })])
    .filter(([, f]) => f.count);
  const form = h("form", { novalidate: true, "aria-label": "DNS settings" },
    edit(h("fieldset", { class: "stack" },
      parts.map(([title, f]) => card(title, f.el)),
      errors,
      h("div", { class: "row" }, h("button", { class: "btn primary", type: "submit" }, "Save settings")))));
  onSubmit(form, errors, async () => {
    const body = Object.assign({}, ...parts.map(([, f]) => f.read()));
    await api.put("/api/dns/settings", body);
    dropDraft(form);
    toast("DNS settings saved. They apply within moments, without a restart.");
    await loadStatus();
  });
  const status = h("div");
  async function loadStatus() {
    try {
      const st = await api.get("/api/dns/status", { quiet: true });
      replace(status, dataTable([
        { label: "Upstream", cell: (u) => h("code", {}, u.spec) },
        { label: "In use", cell: (u) => (u.used ? "yes" : "no") },
        { label: "Health", cell: (u) => [badge(u.healthy ? "healthy" : "failing", u.healthy ? "ok" : "bad"), u.reason ? ` ${u.reason}` : ""] },
      ], st.upstreams || [], { empty: "No upstreams." }),
      h("p", { class: "muted small" }, `${st.cache_entries} answers cached.`));
    } catch (err) {
      replace(status, h("p", { class: "muted" }, err.message));
    }
  }
  ctx.root.append(pageHead("DNS settings"), h("div", { class: "stack" }, card("Upstream health", status), form));
  keepDraft(form, "dns-settings");
  await loadStatus();
}

function inferSchema(value) {
  const properties = {};
  for (const [k, v] of Object.entries(value || {})) {
    if (Array.isArray(v)) properties[k] = { type: "array", items: { type: "string" } };
    else if (typeof v === "boolean") properties[k] = { type: "boolean" };
    else if (typeof v === "number") properties[k] = { type: "integer" };
    else properties[k] = { type: "string" };
  }
  return { type: "object", properties };
}
