// Status: this node at a glance — cluster role and sync freshness,
// readiness, DNS and storage health, version.

import { api, pick } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { ago, dateTime, number } from "../format.js";
import { renderPeers, renderStatus } from "../cluster/status.js";
import { humanize } from "../schemaform.js";
import { badge, card, kv, pageHead } from "../widgets.js";

export const title = "Status";

export async function render(ctx) {
  const cluster = h("div", { id: "cluster-status" });
  const peers = h("div");
  const system = h("div");
  const errors = errorBox();

  async function load() {
    errors.set(null);
    try {
      await renderStatus(cluster);
    } catch (err) {
      errors.set(err);
    }
    await renderPeers(peers);
    const [ready, health, version, sys] = await Promise.all([
      api.get("/api/cluster/ready", { quiet: true }).catch((e) => ({ error: e })),
      api.get("/api/health", { quiet: true }).catch((e) => ({ error: e })),
      api.get("/api/version", { quiet: true }).catch(() => ({})),
      api.get("/api/system/status", { quiet: true }).catch(() => null),
    ]);
    const pairs = [
      ["Ready (for keepalived)", ready.error ? ready.error.message : badge(ready.ok ? "ready" : "not ready", ready.ok ? "ok" : "bad")],
      ["Health", health.error && !health.ok ? health.error.message : badge(health.ok ? "ok" : "degraded", health.ok ? "ok" : "bad")],
      ["Storage", pick(health, "store") || "–"],
      ...Object.entries(pick(health, "checks") || {}).map(([k, v]) => [`Check: ${k}`, badge(v ? "ok" : "failing", v ? "ok" : "bad")]),
      ["Version", pick(version, "version") || "–"],
    ];
    if (sys && typeof sys === "object") {
      for (const [k, v] of Object.entries(sys)) {
        if (v === null || typeof v === "object") continue;
        pairs.push([humanize(k), /(_at|At|since|started)$/.test(k) && typeof v === "number" ? `${ago(v)} (${dateTime(v)})` : typeof v === "number" ? number(v) : String(v)]);
      }
    }
    replace(system, kv(pairs));
  }

  ctx.root.append(pageHead("Status", h("button", { class: "btn", type: "button", onclick: load }, "Refresh")),
    errors,
    h("div", { class: "grid" },
      card("Cluster", cluster, h("p", {}, h("a", { href: "/cluster" }, "Cluster / HA setup"))),
      card("This node", system)),
    h("div", { class: "stack" }, h("span"), card("VRRP peers", peers)));
  ctx.every(load, 5000);
  await load();
}
