// Manual allow/block rules: global or for one client/subnet.

import { api, listOf } from "../api.js";
import { errorBox, field, h, replace, select } from "../dom.js";
import { dropDraft, keepDraft } from "../drafts.js";
import { attempt, busy, confirmDialog, edit, keepRowErrors, onSubmit, rowAction, toast } from "../ui.js";
import { badge, card, dataTable } from "../widgets.js";

export const PATTERN_HINT =
  "example.com blocks the name and all its subdomains; *.example.com only subdomains; |example.com| only the exact name. Allow rules win over block rules.";

/** Create a rule (used by the query log's one-click actions too). */
export function createRule(pattern, action, extra = {}) {
  return api.post("/api/rules", { pattern, action, ...extra });
}

export async function render(root) {
  const errors = errorBox();
  const list = h("div", { "aria-live": "polite" });
  let clients = [];

  const clientSelect = () => select({ name: "client_id" },
    [["", "Everyone (global)"], ...clients.map((c) => [c.id, c.name])], "");

  const scope = h("div");
  const form = h("form", { novalidate: true, "aria-label": "Add a rule" },
    edit(h("fieldset", {},
      h("div", { class: "fields" },
        field("Domain pattern", h("input", { name: "pattern", type: "text", required: true, placeholder: "ads.example.com", autocapitalize: "off", spellcheck: "false", "aria-describedby": "pattern-hint" })),
        field("Action", select({ name: "action" }, [["block", "Block"], ["allow", "Allow"]], "block")),
        scope,
        field("Comment", h("input", { name: "comment", type: "text", placeholder: "optional" }))),
      h("p", { class: "hint muted", id: "pattern-hint" }, PATTERN_HINT),
      h("button", { class: "btn primary", type: "submit" }, "Add rule"))));
  onSubmit(form, errors, async (data) => {
    const extra = { comment: data.get("comment") || "" };
    if (data.get("client_id")) extra.client_id = Number(data.get("client_id"));
    await createRule(data.get("pattern").trim(), data.get("action"), extra);
    dropDraft(form); // added: a session ending during the reload below must not bring it back
    form.elements.pattern.value = "";
    form.elements.comment.value = "";
    toast("Rule added. DNS enforces it now.");
    await load();
    form.elements.pattern.focus();
  });

  async function load() {
    await busy(list, errors, async () => {
      const [rules, cl] = await Promise.all([
        api.get("/api/rules"),
        api.get("/api/clients").catch(() => []),
      ]);
      clients = listOf(cl, "clients");
      replace(scope, field("Applies to", clientSelect()));
      const names = new Map(clients.map((c) => [c.id, c.name]));
      replace(list, dataTable([
        { label: "Pattern", cell: (r) => h("code", {}, r.pattern) },
        { label: "Action", cell: (r) => badge(r.action) },
        { label: "Applies to", cell: (r) => (r.client_id ? names.get(r.client_id) || `client ${r.client_id}` : "Everyone") },
        { label: "Comment", cell: (r) => r.comment || "" },
        { label: "Enabled", cell: (r) => edit(h("input", {
          type: "checkbox", checked: r.enabled !== false, "aria-label": `Rule ${r.pattern} enabled`,
          onchange: (e) => rowAction(e.target, list, attempt(e.target, !e.target.checked, async () => {
            await api.patch(`/api/rules/${r.id}`, { enabled: e.target.checked });
            await load();
          })),
        })) },
        { label: "Actions", hidden: true, class: "actions", cell: (r) => edit(h("button", {
          class: "btn small danger", type: "button", "aria-label": `Delete rule ${r.pattern}`,
          onclick: async (e) => {
            const button = e.currentTarget;
            if (!(await confirmDialog(`Delete the rule ${r.pattern}?`, { confirm: "Delete", danger: true }))) return;
            if (await rowAction(button, list, () => api.del(`/api/rules/${r.id}`))) await load();
          },
        }, "Delete")) },
      ], listOf(rules, "rules"), { empty: "No rules yet.", caption: "Rules", stacked: true }));
      keepRowErrors(list);
    });
  }

  root.append(card("Add a rule", form), errors, card("Rules", list));
  await load();
  keepDraft(form, "add-rule"); // after load: the "Applies to" choices exist

}
