// Step 2 — Leader setup: the leader URL (should be the VIP URL), Enable
// Leader, and Load Join Code with a copy button.

import { api, pick } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";
import { dateTime } from "../format.js";
import { refreshCluster, session, subscribe } from "../session.js";
import { busy, confirmDialog, copyText, onSubmit, toast } from "../ui.js";

/** The URL a follower should use: the VIP with this UI's port, else this page's origin. */
export function suggestedLeaderUrl(vip) {
  const port = location.port ? `:${location.port}` : "";
  if (vip) return `${location.protocol}//${vip.split("/")[0]}${port}`;
  return location.origin;
}

/** A warning when the URL's host is not the VIP (or null). */
export function vipWarning(url, vip) {
  const vipAddress = vip ? vip.split("/")[0] : null;
  let host;
  try {
    host = new URL(url).hostname;
  } catch {
    return null; // the API explains invalid URLs
  }
  if (!vipAddress) {
    return "No VIP is configured (Step 1). Use the VIP URL here so followers keep syncing after a failover.";
  }
  if (host !== vipAddress) {
    return `This is not the VIP URL (VIP ${vipAddress}). After a failover, followers would keep syncing from this node instead of the new leader.`;
  }
  return null;
}

/**
 * Why the Join Code cannot be loaded now (or null): the user guide's
 * "Join Code is only available when Leader is enabled and the node's
 * effective role is leader".
 */
export function joinCodeBlocked(c) {
  if (!c || c.configuredRole !== "leader") return "Enable Leader first: Join Codes come from the leader.";
  if (c.effectiveRole !== "leader") {
    return "This node does not hold the VIP right now (standby): load the Join Code on the node that does.";
  }
  return null;
}

export async function render(root, { vip, onChange = () => {}, onCleanup = () => {} }) {
  const c = session.cluster || {};
  const errors = errorBox();
  const warning = h("p", { class: "alert warn", role: "status" });
  const urlInput = h("input", {
    name: "leaderUrl", type: "url", required: true,
    value: c.leaderUrl || suggestedLeaderUrl(vip), autocapitalize: "off", spellcheck: "false",
  });
  const showWarning = () => { warning.textContent = vipWarning(urlInput.value, vip) || ""; };
  urlInput.addEventListener("input", showWarning);
  showWarning();
  const serverWarnings = h("div");

  const form = h("form", { novalidate: true, "aria-label": "Leader setup" },
    h("fieldset", {},
      field("Leader URL", urlInput, "The web address followers can reach, normally the VIP URL, e.g. http://192.168.1.53:8080."),
      warning, serverWarnings,
      h("button", { class: "btn primary", type: "submit" }, "Enable Leader")));
  onSubmit(form, errors, async (data) => {
    const now = session.cluster || {};
    if (now.configuredRole === "follower" && !(await confirmDialog(
      `This node is a follower of ${now.leaderUrl || "another leader"}. Make it the leader instead? It stops syncing; if the current leader still runs, you would have two leaders taking changes. Do this only when the old leader is gone for good.`,
      { confirm: "Enable Leader", danger: true }))) return;
    const answer = await api.post("/api/cluster/enable-leader", { leaderUrl: data.get("leaderUrl").trim() });
    const warnings = [].concat(pick(answer, "warnings") || [], pick(answer, "warning") || []);
    replace(serverWarnings, warnings.map((w) => h("p", { class: "alert warn" }, String(w))));
    toast("This node is now the leader.");
    await refreshCluster();
    await onChange();
  });

  // Join code
  const codeErrors = errorBox();
  const code = h("textarea", { id: "join-code", readonly: true, rows: 3, placeholder: "Load the Join Code, then paste it into Step 3 on the other node." });
  const expires = h("p", { class: "hint" });
  const copyBtn = h("button", {
    class: "btn", type: "button", disabled: true,
    onclick: async () => {
      const ok = await copyText(code.value, code);
      toast(ok ? "Join Code copied." : "Select the code and copy it with Ctrl+C.", ok ? "ok" : "error");
    },
  }, "Copy");
  const loadBtn = h("button", {
    class: "btn primary", type: "button", id: "load-join-code", "aria-describedby": "load-join-code-why",
    onclick: () => busy(joinBox, codeErrors, async () => {
      const answer = await api.get("/api/cluster/join-code");
      code.value = pick(answer, "joinCode", "join_code", "code") || "";
      const exp = pick(answer, "expiresAt", "expires_at");
      const warning = pick(answer, "warning");
      expires.textContent = (exp ? `Valid until ${dateTime(exp)}. It carries the cluster secret: share it only with your other node.` : "") +
        (warning ? ` Warning: ${warning}` : "");
      copyBtn.disabled = !code.value;
    }).then(() => syncLoad()),
  }, "Load Join Code");
  const why = h("p", { class: "hint", id: "load-join-code-why" });
  const joinBox = h("div", { class: "field section-gap" },
    h("div", { class: "row" }, h("label", { for: "join-code" }, "Join Code"), h("span", { class: "spacer" }), loadBtn),
    why,
    h("div", { class: "codebox" }, code, copyBtn),
    expires, codeErrors);
  const syncLoad = () => {
    const blocked = joinCodeBlocked(session.cluster);
    loadBtn.disabled = Boolean(blocked);
    why.textContent = blocked || "";
    why.hidden = !blocked;
  };
  onCleanup(subscribe(syncLoad));
  syncLoad();

  root.append(form, errors, joinBox);
}
