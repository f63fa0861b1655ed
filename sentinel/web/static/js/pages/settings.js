// DNS settings: upstreams, cache, allowed client networks, rate limit,
// blocking response.  The form follows the API's own schema.

import { api } from "../api.js";
import { errorBox, h } from "../dom.js";
import { requestSchema, schemaFields } from "../schemaform.js";
import { edit, onSubmit, toast } from "../ui.js";
import { card, pageHead } from "../widgets.js";

export const title = "DNS settings";

const LABELS = {
  upstreams: "Upstream DNS servers",
  allowed_networks: "Allowed client networks",
  blocking_mode: "Blocking mode",
  blocked_ttl: "TTL of blocked answers (s)",
};
const HINTS = {
  upstreams: "One per line, tried in order: 9.9.9.9, tcp://IP, tls://NAME#IP (DNS over TLS), https://NAME/dns-query#IP (DNS over HTTPS).",
  allowed_networks: "One CIDR per line; queries from other addresses are refused. Empty = loopback, private and link-local networks.",
};

export async function render(ctx) {
  const errors = errorBox();
  const [settings, schema] = await Promise.all([
    api.get("/api/dns/settings"),
    requestSchema("PUT", "/api/dns/settings").then((s) => s || requestSchema("PATCH", "/api/dns/settings")),
  ]);
  const fields = schemaFields(schema || inferSchema(settings), settings, { labels: LABELS, hints: HINTS });
  const form = h("form", { novalidate: true, "aria-label": "DNS settings" },
    edit(h("fieldset", {}, fields.el, errors,
      h("button", { class: "btn primary", type: "submit" }, "Save settings"))));
  onSubmit(form, errors, async () => {
    await api.patch("/api/dns/settings", fields.read());
    toast("DNS settings saved.");
  });
  ctx.root.append(pageHead("DNS settings"), card("Resolver", form));
}

function inferSchema(value) {
  const properties = {};
  for (const [k, v] of Object.entries(value || {})) {
    if (Array.isArray(v)) properties[k] = { type: "array", items: { type: "string" } };
    else if (typeof v === "boolean") properties[k] = { type: "boolean" };
    else if (typeof v === "number") properties[k] = { type: "number" };
    else if (v && typeof v === "object") properties[k] = inferSchema(v);
    else properties[k] = { type: "string" };
  }
  return { type: "object", properties };
}
