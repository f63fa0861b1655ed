// Blocklists: add by URL, enable/disable/shadow, refresh with progress and
// the outcome of the last refresh.

import { api, listOf } from "../api.js";
import { errorBox, field, h, replace, select } from "../dom.js";
import { ago, dateTime, number } from "../format.js";
import { keepDraft } from "../drafts.js";
import { attempt, busy, confirmDialog, edit, keepRowErrors, onSubmit, rowAction, toast } from "../ui.js";
import { card, dataTable } from "../widgets.js";

const POLL_MS = 2000;
const MODES = [["enabled", "Enabled"], ["shadow", "Shadow (log only)"], ["disabled", "Disabled"]];

/** The download outcome of a list (fields of GET /api/blocklists). */
export function listStatus(b) {
  return {
    domains: b.domains,
    skipped: b.skipped,
    updated: b.updated_at,
    checked: b.checked_at,
    ok: b.ok,
    error: b.last_error || "",
  };
}

export async function render(root) {
  const errors = errorBox();
  const list = h("div", { "aria-live": "polite" });
  const refreshing = new Set(); // refreshes this page asked for
  let poll = null;

  const form = h("form", { novalidate: true, "aria-label": "Add a blocklist" },
    edit(h("fieldset", {},
      h("div", { class: "fields" },
        field("Name", h("input", { name: "name", type: "text", required: true, placeholder: "Ads and trackers" })),
        field("URL", h("input", { name: "url", type: "url", required: true, placeholder: "https://example.org/hosts.txt", autocapitalize: "off", spellcheck: "false" }),
          "Hosts files, plain domain lists and Adblock-style ||domain^ lists."),
        field("Mode", select({ name: "mode" }, MODES, "enabled"),
          "Shadow mode logs what the list would block but answers normally.")),
      h("button", { class: "btn primary", type: "submit" }, "Add blocklist"))));
  onSubmit(form, errors, async (data) => {
    const created = await api.post("/api/blocklists", {
      name: data.get("name").trim(), url: data.get("url").trim(), mode: data.get("mode"),
    });
    form.reset();
    toast("Blocklist added; downloading it now.");
    await load();
    if (created && created.id) await refresh(created);
  });

  async function refresh(b, announce = true) {
    refreshing.add(b.id);
    await load();
    try {
      // The API answers when the download is finished.
      const done = await api.post(`/api/blocklists/${b.id}/refresh`, {});
      if (announce) toast(`${b.name}: ${number(done.domains)} domains.`);
    } catch (err) {
      toast(err.message, "error", 10000);
    } finally {
      refreshing.delete(b.id);
    }
    await load();
  }

  async function load() {
    await busy(list, errors, async () => {
      const lists = listOf(await api.get("/api/blocklists"), "blocklists");
      // A download the server runs on its own (a new list, a changed URL,
      // the schedule, another tab) shows too, and is followed until done.
      const downloading = (b) => refreshing.has(b.id) || b.refreshing === true;
      clearTimeout(poll);
      if (lists.some((b) => b.refreshing === true && !refreshing.has(b.id))) {
        poll = setTimeout(() => { if (list.isConnected) load(); }, POLL_MS);
      }
      replace(list, dataTable([
        { label: "List", cell: (b) => [h("strong", {}, b.name), h("div", { class: "small muted mono" }, b.url)] },
        { label: "Mode", cell: (b) => edit(select({
          "aria-label": `Mode of ${b.name}`,
          onchange: (e) => rowAction(e.target, list, attempt(e.target, b.mode, async () => {
            await api.patch(`/api/blocklists/${b.id}`, { mode: e.target.value });
            toast(`${b.name}: ${e.target.value}.`);
            await load();
          })),
        }, MODES, b.mode)) },
        { label: "Domains", class: "num", cell: (b) => number(listStatus(b).domains) },
        { label: "Last update", cell: (b) => statusCell(b, downloading(b)) },
        { label: "Actions", hidden: true, class: "actions", cell: (b) => [
          edit(h("button", {
            class: "btn small", type: "button", "aria-label": `Refresh ${b.name}`,
            disabled: downloading(b), onclick: () => refresh(b),
          }, downloading(b) ? "Refreshing…" : "Refresh")), " ",
          edit(h("button", {
            class: "btn small danger", type: "button", "aria-label": `Delete ${b.name}`,
            onclick: async (e) => {
              const button = e.currentTarget;
              if (!(await confirmDialog(`Delete the blocklist ${b.name}?`, { confirm: "Delete", danger: true }))) return;
              if (await rowAction(button, list, () => api.del(`/api/blocklists/${b.id}`))) await load();
            },
          }, "Delete"))] },
      ], lists, { empty: "No blocklists yet. Add one by URL above.", caption: "Blocklists", stacked: true }));
      keepRowErrors(list);
    });
  }

  root.append(card("Add a blocklist", form), errors, card("Blocklists", list));
  keepDraft(form, "add-blocklist");
  await load();
}

function statusCell(b, busyNow) {
  const st = listStatus(b);
  if (busyNow) {
    return h("span", { class: "badge info", role: "status" }, "Downloading…");
  }
  const parts = [];
  parts.push(st.updated ? h("time", { title: dateTime(st.updated) }, `changed ${ago(st.updated)}`) : h("span", { class: "muted" }, "never downloaded"));
  if (st.checked) parts.push(h("div", { class: "small muted" }, `checked ${ago(st.checked)}`));
  if (st.skipped) parts.push(h("div", { class: "small muted" }, `${number(st.skipped)} lines skipped`));
  if (st.ok === false) parts.push(h("div", { class: "small" }, h("span", { class: "badge bad" }, "failed"), " ", st.error));
  return parts;
}
