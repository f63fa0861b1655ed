// Local DNS: rewrites (domain or *.domain -> IPv4/IPv6 address or a CNAME target).

import { api, listOf } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";
import { keepDraft } from "../drafts.js";
import { attempt, busy, confirmDialog, edit, keepRowErrors, onSubmit, rowAction, toast } from "../ui.js";
import { card, dataTable, pageHead } from "../widgets.js";

export const title = "Local DNS";

export async function render(ctx) {
  const errors = errorBox();
  const list = h("div", { "aria-live": "polite" });
  const form = h("form", { novalidate: true, "aria-label": "Add a rewrite" },
    edit(h("fieldset", {},
      h("div", { class: "fields" },
        field("Domain", h("input", { name: "domain", type: "text", required: true, placeholder: "nas.home or *.lab.home", autocapitalize: "off", spellcheck: "false" })),
        field("Answer", h("input", { name: "answer", type: "text", required: true, placeholder: "192.168.1.10, fd00::10 or host.example", autocapitalize: "off", spellcheck: "false" }),
          "An address answers A/AAAA; a host name answers with a CNAME that Sentinel resolves for the client."),
        field("TTL (seconds)", h("input", { name: "ttl", type: "number", min: 0, max: 86400, value: 300 })),
        field("Comment", h("input", { name: "comment", type: "text", placeholder: "optional" }))),
      h("button", { class: "btn primary", type: "submit" }, "Add rewrite"))));
  onSubmit(form, errors, async (data) => {
    await api.post("/api/dns/rewrites", {
      domain: data.get("domain").trim(), answer: data.get("answer").trim(),
      ttl: Number(data.get("ttl") || 300), comment: data.get("comment") || "",
    });
    form.reset();
    toast("Rewrite added.");
    await load();
  });

  async function load() {
    await busy(list, errors, async () => {
      const rewrites = listOf(await api.get("/api/dns/rewrites"), "rewrites");
      replace(list, dataTable([
        { label: "Domain", cell: (r) => h("code", {}, r.domain) },
        { label: "Answer", cell: (r) => h("code", {}, r.answer) },
        { label: "TTL", class: "num", cell: (r) => String(r.ttl ?? "") },
        { label: "Comment", cell: (r) => r.comment || "" },
        { label: "Enabled", cell: (r) => edit(h("input", {
          type: "checkbox", checked: r.enabled !== false, "aria-label": `Rewrite ${r.domain} enabled`,
          onchange: (e) => rowAction(e.target, list, attempt(e.target, !e.target.checked, async () => {
            await api.patch(`/api/dns/rewrites/${r.id}`, { enabled: e.target.checked });
            await load();
          })),
        })) },
        { label: "Actions", hidden: true, class: "actions", cell: (r) => edit(h("button", {
          class: "btn small danger", type: "button", "aria-label": `Delete rewrite ${r.domain}`,
          onclick: async (e) => {
            const button = e.currentTarget;
            if (!(await confirmDialog(`Delete the rewrite for ${r.domain}?`, { confirm: "Delete", danger: true }))) return;
            if (await rowAction(button, list, () => api.del(`/api/dns/rewrites/${r.id}`))) await load();
          },
        }, "Delete")) },
      ], rewrites, { empty: "No rewrites yet.", caption: "Rewrites", stacked: true }));
      keepRowErrors(list);
    });
  }

  ctx.root.append(pageHead("Local DNS"),
    h("div", { class: "stack" }, card("Add a rewrite", form), errors, card("Rewrites", list)));
  keepDraft(form, "add-rewrite");
  await load();
}
