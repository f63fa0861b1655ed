// Clients and subnets: a name, addresses/CIDRs, which blocklists apply,
// a kill switch, and schedules (days + time window).

import { api, listOf } from "../api.js";
import { checkbox, errorBox, field, h, replace, select } from "../dom.js";
import { dropDraft, hasDraft, keepDraft } from "../drafts.js";
import { attempt, busy, confirmDialog, edit, keepRowErrors, onSubmit, rowAction, toast } from "../ui.js";
import { badge, card, dataTable, pageHead } from "../widgets.js";

export const title = "Clients";

const DAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];

export async function render(ctx) {
  const errors = errorBox();
  const list = h("div", { "aria-live": "polite" });
  const editor = h("div");
  let blocklists = [];
  let shown = []; // the clients listed
  let editing = null; // the open editor's form

  async function load() {
    await busy(list, errors, async () => {
      const [clients, lists] = await Promise.all([
        api.get("/api/clients"), api.get("/api/blocklists").catch(() => []),
      ]);
      blocklists = listOf(lists, "blocklists");
      const names = new Map(blocklists.map((b) => [b.id, b.name]));
      replace(list, dataTable([
        { label: "Name", cell: (c) => [h("strong", {}, c.name), c.comment ? h("div", { class: "small muted" }, c.comment) : null] },
        { label: "Addresses", cell: (c) => h("span", { class: "mono" }, (c.addresses || []).join(", ")) },
        { label: "Blocklists", cell: (c) => (c.use_global_blocklists !== false ? "Global selection" : (c.blocklists || []).map((id) => names.get(id) || `#${id}`).join(", ") || "None") },
        { label: "Schedules", cell: (c) => (c.schedules || []).map(scheduleText).join("; ") || "–" },
        { label: "Kill switch", cell: (c) => h("label", { class: "row" }, edit(h("input", {
          type: "checkbox", checked: Boolean(c.kill_switch), "aria-label": `Block everything for ${c.name}`,
          onchange: (e) => rowAction(e.target, list, attempt(e.target, !e.target.checked, async () => {
            await api.patch(`/api/clients/${c.id}`, { kill_switch: e.target.checked });
            toast(e.target.checked ? `${c.name}: everything blocked.` : `${c.name}: kill switch off.`);
            await load();
          })),
        })), c.kill_switch ? badge("all blocked", "bad") : null) },
        { label: "Actions", hidden: true, class: "actions", cell: (c) => [
          h("button", { class: "btn small", type: "button", "aria-label": `Edit ${c.name}`, onclick: () => openEditor(c) }, "Edit"), " ",
          edit(h("button", {
            class: "btn small danger", type: "button", "aria-label": `Delete ${c.name}`,
            onclick: async (e) => {
              const button = e.currentTarget;
              if (!(await confirmDialog(`Delete the client ${c.name}? Its rules stop applying.`, { confirm: "Delete", danger: true }))) return;
              if (await rowAction(button, list, () => api.del(`/api/clients/${c.id}`))) await load();
            },
          }, "Delete"))] },
      ], shown = listOf(clients, "clients"), { empty: "No clients yet. Every device uses the global settings.", caption: "Clients", stacked: true }));
      keepRowErrors(list);
    });
  }

  function openEditor(client) {
    const c = client || { name: "", addresses: [], use_global_blocklists: true, blocklists: [], kill_switch: false, schedules: [], comment: "" };
    const ferr = errorBox();
    const schedules = h("div", { class: "stack" });
    const addSchedule = (s) => schedules.append(scheduleEditor(s, blocklists));
    (c.schedules || []).forEach(addSchedule);
    const useGlobal = h("input", { type: "checkbox", name: "use_global_blocklists", checked: c.use_global_blocklists !== false, id: "cl-global" });
    const chosen = h("fieldset", { class: "field" }, h("legend", { class: "label" }, "Blocklists for this client"),
      blocklists.length ? blocklists.map((b) => checkbox(b.name, { name: "blocklists", value: b.id, checked: (c.blocklists || []).includes(b.id) }))
        : h("p", { class: "muted" }, "No blocklists configured."));
    const syncChosen = () => { chosen.hidden = useGlobal.checked; };
    useGlobal.addEventListener("change", syncChosen);
    syncChosen();
    const form = h("form", { novalidate: true, "aria-label": client ? `Edit ${c.name}` : "Add a client" },
      edit(h("fieldset", {},
        h("div", { class: "fields" },
          field("Name", h("input", { name: "name", type: "text", required: true, value: c.name, placeholder: "Kids' tablet" })),
          field("Comment", h("input", { name: "comment", type: "text", value: c.comment || "" }))),
        field("IP addresses and subnets", h("textarea", { name: "addresses", rows: 3, required: true, placeholder: "192.168.1.23\n192.168.50.0/24" }, (c.addresses || []).join("\n")),
          "One per line. The most specific match wins: an address beats a subnet, a smaller subnet beats a larger one."),
        h("div", { class: "field inline" }, useGlobal, h("label", { for: "cl-global" }, "Use the global blocklist selection")),
        chosen,
        checkbox("Kill switch: block everything for this client", { name: "kill_switch", checked: Boolean(c.kill_switch) }),
        h("h3", {}, "Schedules"),
        h("p", { class: "hint muted" }, "During a schedule, this client gets everything (or the chosen lists) blocked, e.g. bedtime."),
        schedules,
        h("div", { class: "row" },
          h("button", { class: "btn small", type: "button", onclick: () => addSchedule(null) }, "Add schedule")),
        ferr,
        h("div", { class: "row end" },
          h("button", { class: "btn", type: "button", "data-local": "", onclick: () => closeEditor() }, "Cancel"),
          h("button", { class: "btn primary", type: "submit" }, client ? "Save client" : "Add client")))));
    onSubmit(form, ferr, async (data) => {
      const body = {
        name: data.get("name").trim(),
        comment: data.get("comment") || "",
        addresses: data.get("addresses").split(/[\s,]+/).filter(Boolean),
        use_global_blocklists: useGlobal.checked,
        blocklists: data.getAll("blocklists").map(Number),
        kill_switch: data.get("kill_switch") !== null,
        schedules: [...schedules.children].map((el) => el.read()),
      };
      if (client) await api.put(`/api/clients/${client.id}`, body);
      else await api.post("/api/clients", body);
      dropDraft(form);
      toast(client ? "Client saved." : "Client added.");
      editing = null; // sent: its draft is dropped (onSubmit's "sent")
      replace(editor);
      await load();
    });
    closeEditor(); // another editor's unsent values are given up with it
    replace(editor, card(client ? `Edit client: ${c.name}` : "Add a client", form));
    editing = form;
    keepDraft(form, client ? `edit-client-${client.id}` : "add-client");
    form.querySelector("input").focus();
  }

  function closeEditor() {
    dropDraft(editing);
    editing = null;
    replace(editor);
  }

  /** An editor left open when the session ended opens again (drafts.js). */
  function reopenDraft() {
    if (hasDraft("add-client")) return openEditor(null);
    const c = shown.find((x) => hasDraft(`edit-client-${x.id}`));
    if (c) openEditor(c);
  }

  ctx.root.append(
    pageHead("Clients", edit(h("button", { class: "btn primary", type: "button", onclick: () => openEditor(null) }, "Add client"))),
    h("div", { class: "stack" }, editor, errors, card("Clients and subnets", list)));
  await load();
  reopenDraft();
}

function scheduleText(s) {
  const days = (s.days || []).join(" ");
  return `${days} ${s.start}–${s.end}${s.block === "lists" ? " (chosen lists)" : ""}`;
}

function scheduleEditor(s, blocklists) {
  const v = s || { days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "21:00", end: "07:00", block: "all", blocklists: [] };
  const start = h("input", { type: "time", value: v.start, required: true });
  const end = h("input", { type: "time", value: v.end, required: true });
  const mode = select({}, [["all", "Block everything"], ["lists", "Block the chosen lists"]], v.block || "all");
  const days = DAYS.map(([d, label]) => checkbox(label, { value: d, checked: (v.days || []).includes(d) }));
  const lists = h("div", { class: "row" }, blocklists.map((b) => checkbox(b.name, { value: b.id, checked: (v.blocklists || []).includes(b.id) })));
  const syncMode = () => { lists.hidden = mode.value !== "lists"; };
  mode.addEventListener("change", syncMode);
  syncMode();
  const el = h("fieldset", { class: "card" },
    h("legend", { class: "visually-hidden" }, "Schedule"),
    h("div", { class: "row", role: "group", "aria-label": "Days" }, days),
    h("div", { class: "fields" }, field("From", start), field("Until", end), field("What", mode)),
    lists,
    h("button", { class: "btn small danger", type: "button", onclick: () => el.remove() }, "Remove schedule"));
  el.read = () => ({
    days: days.map((d) => d.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
    start: start.value, end: end.value, block: mode.value,
    blocklists: mode.value === "lists" ? [...lists.querySelectorAll("input:checked")].map((i) => Number(i.value)) : [],
  });
  return el;
}
