// How blocked names are answered (part of the DNS settings).

import { api } from "../api.js";
import { errorBox, field, h, select } from "../dom.js";
import { edit, onSubmit, toast } from "../ui.js";
import { card } from "../widgets.js";

const MODES = [
  ["nxdomain", "NXDOMAIN: the name does not exist (recommended)"],
  ["null", "Null address: 0.0.0.0 and ::"],
  ["refused", "REFUSED: the server refuses to answer"],
];

export async function render(root) {
  const errors = errorBox();
  const settings = await api.get("/api/dns/settings");
  const form = h("form", { novalidate: true },
    edit(h("fieldset", {},
      field("Blocking mode", select({ name: "blocking_mode" }, MODES, settings.blocking_mode || "nxdomain")),
      field("TTL of blocked answers (seconds)", h("input", {
        name: "blocked_ttl", type: "number", min: 0, max: 86400, value: settings.blocked_ttl ?? 300,
      }), "How long clients may cache a blocked answer."),
      h("button", { class: "btn primary", type: "submit" }, "Save"))));
  onSubmit(form, errors, async (data) => {
    await api.put("/api/dns/settings", {
      blocking_mode: data.get("blocking_mode"),
      blocked_ttl: Number(data.get("blocked_ttl")),
    });
    toast("Blocking mode saved.");
  });
  root.append(card("Blocking mode", form, errors));
}
