// Step 1 — VIP / Keepalived (VRRP): the same VIP, password and mode on
// every node; each node picks its LAN interface and its own priority.

import { api, pick } from "../api.js";
import { checkbox, errorBox, field, h, replace, select } from "../dom.js";
import { ago } from "../format.js";
import { onSubmit, toast } from "../ui.js";

export async function render(root) {
  const errors = errorBox();
  const notes = h("div", { "aria-live": "polite" });
  const [config, netinfo, haStatus] = await Promise.all([
    api.get("/api/cluster/ha/config"),
    api.get("/api/cluster/netinfo").catch((err) => ({ error: err.message })),
    api.get("/api/cluster/ha/status", { quiet: true }).catch(() => null),
  ]);
  const interfaces = (netinfo.interfaces || []).filter((i) => !i.loopback);
  const suggested = pick(netinfo, "suggestedInterface") || pick(pick(netinfo, "defaultRoute") || {}, "interface");
  const current = config.interface || suggested || "";
  const ifaceOptions = interfaces.map((i) => [i.name,
    `${i.name}${i.addresses && i.addresses.length ? " — " + i.addresses.filter((a) => !a.includes(":")).join(", ") : ""}${i.name === suggested ? " (default route)" : ""}${i.up === false ? " (down)" : ""}`]);
  if (interfaces.length && current && !ifaceOptions.some(([n]) => n === current)) ifaceOptions.unshift([current, `${current} (not detected)`]);
  const iface = interfaces.length
    ? select({ name: "interface", id: "ha-interface" }, [["", "Choose…"], ...ifaceOptions], current)
    : h("input", { name: "interface", id: "ha-interface", type: "text", value: current, placeholder: "eth0" });
  const detected = !interfaces.length
    ? "Not detected (the sidecar has not reported): type the LAN interface name, e.g. eth0."
    : pick(netinfo, "detectedAt") ? `Detected by the keepalived sidecar ${ago(pick(netinfo, "detectedAt"))}.` : "Detected by the keepalived sidecar.";
  const passwordSet = Boolean(pick(config, "passwordSet", "password_set", "hasPassword"));

  const mode = select({ name: "mode" }, [["multicast", "multicast (usual)"], ["unicast", "unicast (when multicast is blocked)"]], config.mode || "multicast");
  const peers = field("Unicast peers", h("textarea", { name: "unicastPeers", rows: 2, placeholder: "192.168.1.11" }, (config.unicastPeers || []).join("\n")),
    "The other nodes' own IPv4 addresses, one per line.");
  const syncMode = () => { peers.hidden = mode.value !== "unicast"; };
  mode.addEventListener("change", syncMode);
  syncMode();

  const form = h("form", { novalidate: true, "aria-label": "VIP and keepalived settings" },
    sidecarLine(haStatus),
    h("fieldset", {},
      checkbox("Enable VIP failover", { name: "enabled", checked: Boolean(config.enabled) }),
      h("div", { class: "fields" },
        field("VIP", h("input", { name: "vip", type: "text", value: config.vip || "", placeholder: "192.168.1.53/24", inputmode: "decimal" }),
          "An IP address only (DNS uses port 53 automatically), the same on every node."),
        field("Shared VRRP password", h("input", {
          name: "password", type: "password", autocomplete: "new-password", maxlength: 8,
          placeholder: passwordSet ? "(set; leave empty to keep)" : "up to 8 characters",
        }), "The same on every node; at most 8 characters (VRRP carries 8)."),
        field("Mode", mode),
        field("Interface", iface, detected),
        field("Priority", h("input", { name: "priority", type: "number", min: 1, max: 254, value: config.priority ?? 100 }),
          "Different on each node; the highest wins the VIP (e.g. 120 and 110)."),
        field("Virtual router id", h("input", { name: "virtualRouterId", type: "number", min: 1, max: 255, value: config.virtualRouterId ?? 53 }),
          "The same on every node of this pair; unique on the LAN."),
        field("Advert interval (s)", h("input", { name: "advertInterval", type: "number", min: 1, max: 255, value: config.advertInterval ?? 1 })),
        field("Source IP", h("input", { name: "sourceIp", type: "text", value: config.sourceIp || "", placeholder: "optional" }),
          "This node's own address for VRRP adverts (optional).")),
      peers,
      errors, notes,
      h("button", { class: "btn primary", type: "submit" }, "Save & Apply")));

  onSubmit(form, errors, async (data) => {
    const body = {
      enabled: data.get("enabled") !== null,
      vip: data.get("vip").trim() || null,
      interface: (data.get("interface") || "").trim() || null,
      priority: Number(data.get("priority")),
      virtualRouterId: Number(data.get("virtualRouterId")),
      advertInterval: Number(data.get("advertInterval")),
      mode: data.get("mode"),
      unicastPeers: data.get("unicastPeers").split(/[\s,]+/).filter(Boolean),
      sourceIp: data.get("sourceIp").trim() || null,
    };
    if (data.get("password")) body.password = data.get("password");
    const saved = await api.put("/api/cluster/ha/config", body);
    form.elements.password.value = "";
    const warnings = (saved && saved.warnings) || [];
    replace(notes, warnings.map((w) => h("p", { class: "alert warn" }, `Warning: ${w}`)));
    toast(body.enabled ? "Saved. The keepalived sidecar applies it now." : "Saved. VIP failover is off.");
  });
  root.append(form);
}

/** One line on what the keepalived sidecar last reported. */
function sidecarLine(st) {
  const sidecar = st && st.sidecar;
  if (!sidecar) {
    return h("p", { class: "alert info", id: "sidecar-status" },
      "The keepalived sidecar has not reported on this node. VIP failover needs it running (see the HA guide); the settings are saved either way.");
  }
  const parts = [sidecar.summary || (sidecar.haEnabled ? "keepalived enabled" : "keepalived idle (VIP failover disabled)")];
  if (sidecar.vrrpState) parts.push(`VRRP state ${sidecar.vrrpState}`);
  if (st.sidecarAgeSeconds !== null && st.sidecarAgeSeconds !== undefined) parts.push(`reported ${Math.round(st.sidecarAgeSeconds)} s ago`);
  return h("p", { class: `alert ${sidecar.lastError ? "warn" : "info"}`, id: "sidecar-status" },
    h("strong", {}, "Sidecar: "), parts.join(" · "),
    sidecar.lastError ? h("span", {}, ` — last error: ${typeof sidecar.lastError === "string" ? sidecar.lastError : JSON.stringify(sidecar.lastError)}`) : null);
}
