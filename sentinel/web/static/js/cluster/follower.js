// Step 3 — Configure follower: paste the join code from the leader.

import { api } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";
import { refreshCluster } from "../session.js";
import { confirmDialog, onSubmit, toast } from "../ui.js";

export async function render(root, { onChange }) {
  const errors = errorBox();
  const done = h("div");
  const form = h("form", { novalidate: true, "aria-label": "Configure follower" },
    field("Join code", h("textarea", { name: "joinCode", id: "follower-join-code", rows: 3, required: true, spellcheck: "false", autocapitalize: "off" }),
      "From Step 2 on the leader. This node checks the code with the leader before saving, then keeps pulling its configuration."),
    errors, done,
    h("button", { class: "btn primary", type: "submit" }, "Configure"));
  onSubmit(form, errors, async (data) => {
    const code = data.get("joinCode").trim();
    if (!(await confirmDialog("Make this node a follower? Its filtering configuration will be replaced by the leader's, and local changes will be refused.", { confirm: "Configure follower" }))) return;
    const answer = await api.post("/api/cluster/configure-follower", { joinCode: code });
    form.reset();
    replace(done, h("p", { class: "alert ok", role: "status" }, (answer && answer.message) || "This node is now a follower of the leader."));
    await refreshCluster();
    onChange();
  });
  root.append(form);
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
