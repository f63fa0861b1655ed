// "Hand over the VIP" (POST /api/cluster/ha/release): offered in the
// Status card on the VIP holder while another node is ready to take the
// VIP — e.g. to give it back to the configured leader after a failover.

import { api, listOf } from "../api.js";
import { errorBox, h, replace } from "../dom.js";
import { confirmDialog } from "../ui.js";

const PENDING = ["scheduled", "releasing"];

/**
 * What to offer, from GET /api/cluster/ha/status and GET
 * /api/cluster/peer-status: null (not the VIP holder, or no ready peer),
 * else {ready: [addresses], pending: the sidecar's request in progress or null}.
 */
export function releaseOffer(haStatus, peerStatus) {
  const sidecar = (haStatus && haStatus.sidecar) || {};
  const role = haStatus && haStatus.roleFile && haStatus.roleFile.role;
  if (sidecar.vrrpState !== "MASTER" || role !== "leader") return null;
  const ready = listOf(peerStatus || {}, "peers")
    .filter((p) => p && p.ready && p.ready.ok === true && p.address)
    .map((p) => p.address);
  const release = sidecar.release;
  const pending = release && PENDING.includes(release.state) ? release : null;
  if (!ready.length && !pending) return null;
  return { ready, pending };
}

/**
 * Render the offer into ``el`` (empty when there is nothing to offer);
 * the request's answer goes into ``result``, which outlives refreshes.
 */
export function renderRelease(el, offer, { result, onDone = () => {} }) {
  const key = JSON.stringify(offer);
  if (el.dataset.offer === key) return; // unchanged: keep the button (and its focus)
  el.dataset.offer = key;
  if (!offer) {
    replace(el);
    return;
  }
  if (offer.pending) {
    replace(el, h("p", { class: "alert info", role: "status" },
      `Handing the VIP over (${offer.pending.state})…`));
    return;
  }
  const peers = offer.ready.join(" or ");
  const button = h("button", {
    class: "btn", type: "button", id: "release-vip", "aria-describedby": "release-vip-hint",
    onclick: async () => {
      if (!(await confirmDialog(
        `Hand the VIP to ${peers}? DNS through the VIP pauses for about half a second; this node stays as backup.`,
        { confirm: "Hand over the VIP" }))) return;
      button.disabled = true;
      replace(result);
      try {
        const answer = await api.post("/api/cluster/ha/release", {});
        replace(result, h("p", { class: "alert ok", role: "status", id: "release-result" }, answer.message));
        onDone();
      } catch (err) {
        const errors = errorBox();
        errors.set(err);
        replace(result, errors);
        button.disabled = false;
      }
    },
  }, "Hand over the VIP");
  replace(el, h("div", { class: "section-gap" },
    h("div", { class: "row" }, button),
    h("p", { class: "hint", id: "release-vip-hint" },
      `This node holds the VIP; ${peers} ${offer.ready.length > 1 ? "are" : "is"} ready to take it (e.g. to give it back to the configured leader after a failover).`)));
}
