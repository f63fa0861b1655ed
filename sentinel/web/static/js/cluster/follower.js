// Step 3 — Configure Follower: paste the join code from the leader.  On
// a follower, also the leader URL it syncs from (to point it at the VIP
// URL, or — the user guide's readiness check — at an unreachable one).

import { api } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";
import { refreshCluster, session, subscribe } from "../session.js";
import { confirmDialog, onSubmit, toast } from "../ui.js";

export const JOINED =
  "From now on, log in to this node with the leader's admin account: its first sync replaces this node's admin accounts and sessions with the leader's, so this page will ask you to log in again.";

export async function render(root, { onChange, onCleanup = () => {} }) {
  const errors = errorBox();
  const done = h("div");
  const form = h("form", { novalidate: true, "aria-label": "Configure follower" },
    field("Join Code", h("textarea", { name: "joinCode", id: "follower-join-code", rows: 3, required: true, spellcheck: "false", autocapitalize: "off" }),
      "Paste the Join Code from Step 2 on the leader. This node checks it with the leader before saving, then keeps pulling the leader's configuration."),
    errors,
    h("button", { class: "btn primary", type: "submit" }, "Configure"));
  onSubmit(form, errors, async (data) => {
    const code = data.get("joinCode").trim();
    if (!(await confirmDialog(
      "Make this node a follower? At its first sync its configuration is replaced by the leader's, admin accounts and sessions included: you will be logged out here and log in with the leader's admin account from then on. Local changes will be refused.",
      { confirm: "Configure follower" }))) return;
    const answer = await api.post("/api/cluster/configure-follower", { joinCode: code });
    form.reset();
    const leader = answer && answer.leaderUrl ? ` of ${answer.leaderUrl}` : "";
    replace(done, h("div", { class: "alert ok", role: "status", id: "joined" },
      h("p", {}, h("strong", {}, `Joined: this node is now a follower${leader}`), " and refuses local changes."),
      h("p", {}, JOINED)));
    await refreshCluster();
    onChange();
  });

  const leaderUrl = h("div");
  let shownFor;
  const sync = () => {
    const c = session.cluster;
    const follower = Boolean(c && c.configuredRole === "follower");
    if (follower === shownFor) return;
    shownFor = follower;
    replace(leaderUrl, follower ? leaderUrlForm(c.leaderUrl || "") : null);
  };
  onCleanup(subscribe(sync));
  sync();
  root.append(done, form, leaderUrl);
}

/** On a follower: change the URL it syncs from (same cluster, e.g. the VIP URL). */
function leaderUrlForm(current) {
  const errors = errorBox();
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { novalidate: true, "aria-label": "Where this follower syncs from", class: "section-gap" },
    field("Leader URL", h("input", {
      name: "leaderUrl", id: "follower-leader-url", type: "url", required: true, value: current,
      autocapitalize: "off", spellcheck: "false",
    }), "The address this follower syncs from: normally the VIP URL, e.g. http://192.168.1.53:8080. It is saved even when it cannot be reached now."),
    errors, result,
    h("button", { class: "btn", type: "submit" }, "Save Leader URL"));
  onSubmit(form, errors, async (data) => {
    replace(result);
    const answer = await api.post("/api/cluster/leader-url", { leaderUrl: data.get("leaderUrl").trim() });
    if (answer && answer.reachable === false) {
      const why = answer.error && answer.error.message ? ` (${answer.error.message})` : "";
      replace(result, h("p", { class: "alert warn" },
        `Saved, but the leader cannot be reached at ${answer.leaderUrl} now${why}. This follower keeps trying; after 20 s without a sync it reports "not ready".`));
    } else {
      toast("Leader URL saved.");
    }
    await refreshCluster();
  });
  return form;
}

/** "Leave cluster": back to standalone, keeping the local configuration. */
export function leaveButton(onChange) {
  const errors = errorBox();
  const btn = h("button", {
    class: "btn danger", type: "button",
    onclick: async () => {
      if (!(await confirmDialog("Leave the cluster? This node becomes standalone and keeps its current configuration.", { confirm: "Leave cluster", danger: true }))) return;
      try {
        await api.post("/api/cluster/leave", {});
        toast("This node is standalone now.");
        await refreshCluster();
        onChange();
      } catch (err) {
        errors.set(err);
      }
    },
  }, "Leave cluster");
  return h("div", {}, btn, errors);
}
