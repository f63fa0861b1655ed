// Cluster status: effective and configured role, role override, leader
// URL, follower last sync and last error, revisions, readiness, followers
// seen (on a leader) and the VRRP peers' readiness (HA).

import { api, listOf, pick } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, dateTime, duration, number } from "../format.js";
import { refreshCluster } from "../session.js";
import { badge, dataTable, kv } from "../widgets.js";

function when(v) {
  return v ? h("time", { title: dateTime(v) }, `${ago(v)} (${dateTime(v)})`) : "never";
}

export function errorText(e) {
  if (!e) return null;
  if (typeof e === "string") return e;
  return [pick(e, "code"), pick(e, "message")].filter(Boolean).join(": ") || JSON.stringify(e);
}

/** Render the status into ``el`` (and refresh the shared session state). */
export async function renderStatus(el) {
  const c = await refreshCluster();
  if (!c) return c;
  const raw = c.raw || {};
  const sync = raw.sync || {};
  const ready = raw.ready || {};
  const pairs = [
    // The user guide: "VIP owner should show Role leader", "effectiveRole
    // matches the role file".
    ["Role (effectiveRole)", [h("span", { id: "effective-role" }, badge(c.effectiveRole || "starting")),
      c.vipOwner ? h("span", { class: "muted" }, " (VIP owner)") : null]],
    ["Configured role", c.configuredRole],
    ["Role file (roleOverride)", c.roleOverride ? `${c.roleOverride}` : "none"],
    ["Leader URL", c.leaderUrl || null],
    ["Node id", raw.nodeId ? h("code", {}, raw.nodeId) : null],
    ["Ready for the VIP", ready.ok === undefined ? null
      : [badge(ready.ok ? "ready" : "not ready", ready.ok ? "ok" : "bad"), ready.reason ? ` ${ready.reason}` : ""]],
  ];
  if (c.configuredRole === "follower") {
    pairs.push(
      ["Follower last sync", h("span", { id: "last-sync" }, when(c.lastSync))],
      ["Last error", h("span", { id: "last-error" }, c.lastError
        ? [h("span", { class: `badge ${c.syncFailing ? "bad" : "plain"}` }, pick(c.lastError, "code") || "error"), " ", pick(c.lastError, "message") || "",
          pick(c.lastError, "at") ? h("span", { class: "muted" }, ` (${ago(c.lastError.at)})`) : "",
          c.lastError && !c.syncFailing ? h("span", { class: "muted" }, " — synced successfully since") : ""]
        : "none")],
      ["Consecutive failures", sync.consecutiveFailures ? number(sync.consecutiveFailures) : null],
      ["Last sync took", sync.lastSyncDurationMs !== undefined && sync.lastSyncDurationMs !== null
        ? `${duration(sync.lastSyncDurationMs)}, ${number(sync.lastSyncBytes)} bytes` : null],
      // Separate counters: the leader's revision this node has applied, and
      // this node's own (which local logins also move).
      ["Leader revision applied", number(raw.leaderRevision)],
      ["Local revision", number(raw.localRevision)],
    );
  } else if (raw.localRevision !== undefined) {
    pairs.push(["Revision", number(raw.localRevision)]);
  }
  if (raw.counts) {
    pairs.push(["Configuration", Object.entries(raw.counts).map(([k, v]) => `${k}: ${number(v)}`).join(", ")]);
  }
  if (raw.switching) pairs.push(["Services", "switching…"]);
  if (raw.problem) pairs.push(["Problem", h("span", { class: "badge bad" }, errorText(raw.problem))]);
  const parts = [kv(pairs)];
  if (c.message) parts.push(h("p", { class: `alert ${c.failover ? "warn" : "info"}` }, c.message));
  if (c.configuredRole === "leader") {
    parts.push(h("h3", {}, "Followers seen"), dataTable([
      { label: "Follower", cell: (f) => [h("code", {}, f.nodeId || "?"), f.address ? h("div", { class: "small muted" }, f.address) : null] },
      { label: "Revision", class: "num", cell: (f) => number(f.revision) },
      { label: "Lag", class: "num", cell: (f) => (f.lag === null || f.lag === undefined ? "–" : number(f.lag)) },
      { label: "Last contact", cell: (f) => when(f.lastContact) },
    ], listOf(raw.followers || []), { empty: "No follower has synced yet.", caption: "Followers" }));
  }
  replace(el, parts);
  return c;
}

/**
 * Peers' readiness from the HA side: VRRP adverts seen and
 * /api/cluster/ready.  Returns the peer status (null when unavailable).
 */
export async function renderPeers(el) {
  let data;
  try {
    data = await api.get("/api/cluster/peer-status", { quiet: true });
  } catch (err) {
    replace(el, h("p", { class: "muted" }, err.status === 404 ? "Peer status is not available on this node." : err.message));
    return null;
  }
  const peers = listOf(data, "peers");
  const parts = [];
  for (const ip of data.passwordMismatch || []) {
    parts.push(h("p", { class: "alert error" }, `${ip} sends VRRP adverts with a different password: set the same shared password on every node.`));
  }
  parts.push(dataTable([
    { label: "Peer", cell: (p) => h("span", { class: "mono" }, p.address || "?") },
    { label: "Ready", cell: (p) => (p.ready ? badge(p.ready.ok ? "ready" : "not ready", p.ready.ok ? "ok" : "bad") : badge("unknown", "warn")) },
    { label: "Role", cell: (p) => (p.ready && p.ready.role) || "–" },
    { label: "VRRP", cell: (p) => (p.vrrp ? `priority ${p.vrrp.priority ?? "?"}, advert ${p.vrrp.lastAdvertSecondsAgo ?? "?"} s ago` : p.unicastPeer ? "unicast peer, no advert seen" : "–") },
    { label: "Detail", cell: (p) => p.error || "" },
  ], peers, { empty: data.listening ? "No other node seen on VRRP yet." : "No peers: VIP failover is not running on this node.", caption: "VRRP peers" }));
  replace(el, parts);
  return data;
}
