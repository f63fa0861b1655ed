// Cluster / HA: Status, then the three setup steps of the user guide:
// Step 1 — VIP / Keepalived (VRRP), Step 2 — Leader Setup,
// Step 3 — Configure Follower.  Cluster endpoints stay usable on a
// follower (so a node can always be reconfigured or recovered).

import { api } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { render as renderFollower, leaveButton } from "../cluster/follower.js";
import { render as renderLeader } from "../cluster/leader.js";
import { renderPeers, renderStatus } from "../cluster/status.js";
import { releaseOffer, renderRelease } from "../cluster/release.js";
import { render as renderVip } from "../cluster/vip.js";
import { pageHead } from "../widgets.js";

export const title = "Cluster / HA";

function step(n, title, id, ...content) {
  return h("section", { class: "card", id, "aria-labelledby": id + "-t" },
    h("h2", { id: id + "-t" }, h("span", { class: "step-num", "aria-hidden": "true" }, String(n)),
      `Step ${n} — ${title}`), content);
}

async function part(el, fn) {
  const errors = errorBox();
  try {
    await fn();
  } catch (err) {
    errors.set(err);
    replace(el, errors);
  }
}

export async function render(ctx) {
  const status = h("div", { id: "cluster-status" });
  const peers = h("div");
  const leave = h("div");
  const release = h("div");
  const released = h("div", { "aria-live": "polite" });
  const vip = h("div");
  const leader = h("div");
  const follower = h("div");

  async function refreshStatus() {
    await part(status, async () => {
      const c = await renderStatus(status);
      // re-rendered only when it changes (a focused button keeps its focus)
      const inCluster = Boolean(c && c.configuredRole !== "standalone");
      if (inCluster !== Boolean(leave.firstChild)) replace(leave, inCluster ? leaveButton(refreshAll) : null);
    });
    let peerStatus = null;
    await part(peers, async () => { peerStatus = await renderPeers(peers); });
    const ha = await api.get("/api/cluster/ha/status", { quiet: true }).catch(() => null);
    renderRelease(release, releaseOffer(ha, peerStatus), { result: released, onDone: refreshStatus });
  }

  let leaderOff = () => {};
  ctx.onCleanup(() => leaderOff());
  async function refreshAll() {
    await refreshStatus();
    leaderOff();
    replace(leader);
    let ha = {};
    try {
      ha = await api.get("/api/cluster/ha/config", { quiet: true });
    } catch { /* Step 1 shows the error */ }
    await part(leader, () => renderLeader(leader, {
      vip: ha.vip, onChange: refreshStatus, onCleanup: (fn) => { leaderOff = fn; },
    }));
  }

  ctx.root.append(
    pageHead("Cluster / HA"),
    h("p", { class: "muted" }, "Two things work together: VIP failover (keepalived moves one DNS address between nodes) and cluster sync (followers pull the leader's configuration). Point your router's DNS at the VIP only."),
    h("div", { class: "stack" },
      h("section", { class: "card", id: "status", "aria-labelledby": "status-t" },
        h("header", {}, h("h2", { id: "status-t" }, "Status"),
          h("button", { class: "btn small", type: "button", onclick: refreshStatus }, "Refresh")),
        status, h("h3", {}, "VRRP peers"), peers, release, released, leave),
      step(1, "VIP / Keepalived (VRRP)", "step-vip",
        h("p", { class: "muted" }, "Do this on both nodes: the same VIP, password and mode; a different priority on each."), vip),
      step(2, "Leader Setup", "step-leader",
        h("p", { class: "muted" }, "On the node that owns the VIP."), leader),
      step(3, "Configure Follower", "step-follower",
        h("p", { class: "muted" }, "On the other node."), follower)));

  await Promise.all([
    refreshAll(),
    part(vip, () => renderVip(vip)),
    part(follower, () => renderFollower(follower, { onChange: refreshAll, onCleanup: ctx.onCleanup })),
  ]);
  ctx.every(refreshStatus, 5000);
}
