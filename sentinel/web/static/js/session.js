// What the UI knows about this node and the logged-in admin: the user,
// the cluster role (for the badge and the follower read-only banner) and
// the unread notification count.  Subscribers re-render on change.

import { api, pick } from "./api.js";
import { toDate } from "./format.js";

export { pick };

export const session = {
  user: null,
  cluster: null, // normalised cluster status (see clusterView) or null
  unread: 0,
};

const subscribers = new Set();

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function update(patch) {
  Object.assign(session, patch);
  for (const fn of subscribers) fn(session);
}

/** Normalise GET /api/cluster/status into what the UI needs. */
export function clusterView(status) {
  if (!status) return null;
  const configured = pick(status, "configuredRole", "configured_role", "role") || "standalone";
  const effective = pick(status, "effectiveRole", "effective_role") || configured;
  const sync = pick(status, "sync") || {};
  const lastSync = pick(status, "lastSync", "last_sync", "lastSyncAt", "last_sync_at") ?? pick(sync, "lastSync", "last_sync", "at");
  const lastError = pick(status, "lastError", "last_error") ?? pick(sync, "lastError", "last_error", "error");
  const errorAt = toDate(pick(lastError || {}, "at"));
  return {
    raw: status,
    configuredRole: configured,
    effectiveRole: effective,
    roleOverride: pick(status, "roleOverride", "role_override"),
    // keepalived writes "leader" into the role file only on the VIP holder
    vipOwner: pick(status, "roleOverride", "role_override") === "leader",
    leaderUrl: pick(status, "leaderUrl", "leader_url"),
    lastSync,
    lastError,
    // the last error still stands unless a sync succeeded after it
    syncFailing: Boolean(lastError) && !(errorAt && toDate(lastSync) > errorAt),
    readOnly: pick(status, "readOnly", "read_only") ?? configured === "follower",
    failover: pick(status, "failover", "failoverActive", "failover_active"),
    message: pick(status, "message", "note"),
  };
}

/** Refresh the cluster status; a node without clustering is standalone. */
export async function refreshCluster() {
  try {
    const status = await api.get("/api/cluster/status", { quiet: true });
    update({ cluster: clusterView(status) });
  } catch (err) {
    if (err.status === 404) update({ cluster: clusterView({ configuredRole: "standalone" }) });
    else if (err.status !== 401) update({ cluster: session.cluster });
  }
  return session.cluster;
}

/** Refresh the unread notification count (quietly; optional feature). */
export async function refreshUnread() {
  try {
    const data = await api.get("/api/notifications/unread-count", { quiet: true });
    update({ unread: Number(pick(data, "unread", "count") || 0) });
  } catch {
    /* notifications not available: keep the bell at zero */
  }
  return session.unread;
}
