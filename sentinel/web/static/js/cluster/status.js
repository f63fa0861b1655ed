// Cluster status: effective and configured role, role override, leader
// URL, last sync and last error, revisions, followers seen (on a leader)
// and the peers' readiness (HA).

import { api, listOf, pick } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, dateTime, duration, number } from "../format.js";
import { humanize } from "../schemaform.js";
import { refreshCluster } from "../session.js";
import { badge, dataTable, kv } from "../widgets.js";

const SHOWN = new Set(["configuredRole", "configured_role", "role", "effectiveRole", "effective_role",
  "roleOverride", "role_override", "leaderUrl", "leader_url", "lastSync", "last_sync", "lastError",
  "last_error", "followers", "readOnly", "read_only", "message", "secret", "sync", "counts", "failover"]);

function when(v) {
  return v ? h("time", { title: dateTime(v) }, `${ago(v)} (${dateTime(v)})`) : "never";
}

function errorText(e) {
  if (!e) return null;
  if (typeof e === "string") return e;
  return [pick(e, "code"), pick(e, "message")].filter(Boolean).join(": ") || JSON.stringify(e);
}

function scalar(v) {
  return v === null || ["string", "number", "boolean"].includes(typeof v);
}

/** Render the status into ``el`` (and refresh the shared session state). */
export async function renderStatus(el) {
  const c = await refreshCluster();
  const raw = (c && c.raw) || {};
  const sync = pick(raw, "sync") || {};
  const pairs = [
    ["Effective role", h("span", { id: "effective-role" }, badge(c.effectiveRole))],
    ["Configured role", c.configuredRole],
    ["Role override (role file)", c.roleOverride || "none"],
    c.leaderUrl ? ["Leader URL", c.leaderUrl] : null,
  ];
  if (c.configuredRole === "follower") {
    pairs.push(["Follower last sync", h("span", { id: "last-sync" }, when(c.lastSync))]);
    pairs.push(["Last error", c.lastError ? h("span", { class: "badge bad" }, errorText(c.lastError)) : "none"]);
  }
  if (c.failover) pairs.push(["Failover", "active: the leader is unreachable; this node serves DNS with its last configuration"]);
  for (const [k, v] of Object.entries({ ...raw, ...(typeof sync === "object" ? sync : {}) })) {
    if (SHOWN.has(k) || !scalar(v)) continue;
    const text = /_at$|At$|time/i.test(k) && typeof v === "number" ? when(v)
      : /duration/i.test(k) && typeof v === "number" ? duration(k.endsWith("_s") ? v * 1000 : v)
        : typeof v === "number" ? number(v) : String(v);
    pairs.push([humanize(k), text]);
  }
  const counts = pick(raw, "counts") || pick(sync, "counts");
  if (counts && typeof counts === "object") {
    pairs.push(["Synced entities", Object.entries(counts).map(([k, v]) => `${k}: ${number(v)}`).join(", ")]);
  }
  const parts = [kv(pairs)];
  if (c.message) parts.push(h("p", { class: "alert info" }, c.message));
  const followers = listOf(pick(raw, "followers") || []);
  if (c.configuredRole === "leader" || followers.length) {
    parts.push(h("h3", {}, "Followers seen"), dataTable([
      { label: "Follower", cell: (f) => pick(f, "nodeId", "node_id", "address", "name") || "?" },
      { label: "Revision lag", class: "num", cell: (f) => number(pick(f, "lag", "revisionLag", "revision_lag")) },
      { label: "Last contact", cell: (f) => when(pick(f, "lastSeen", "last_seen", "lastContact", "last_contact")) },
    ], followers, { empty: "No follower has synced yet." }));
  }
  replace(el, parts);
  return c;
}

/** Peers' readiness from the HA side (quiet when HA is not available). */
export async function renderPeers(el) {
  let data;
  try {
    data = await api.get("/api/cluster/peer-status", { quiet: true });
  } catch (err) {
    replace(el, h("p", { class: "muted" }, err.status === 404 ? "Peer status is not available on this node." : err.message));
    return;
  }
  const peers = listOf(data, "peers");
  replace(el, dataTable([
    { label: "Peer", cell: (p) => pick(p, "address", "ip", "name", "url") || "?" },
    { label: "Ready", cell: (p) => (pick(p, "ok", "ready") ? badge("ready", "ok") : badge("not ready", "bad")) },
    { label: "Role", cell: (p) => pick(p, "role") || "–" },
    { label: "Checked", cell: (p) => when(pick(p, "checkedAt", "checked_at", "lastSeen", "last_seen")) },
    { label: "Detail", cell: (p) => errorText(pick(p, "error", "message")) || "" },
  ], peers, { empty: "No peers configured or seen yet." }));
}
