// The notifications bell: unread count, a popover with the latest
// notifications (failover events, blocklist failures, ...), mark all read.

import { api } from "./api.js";
import { errorBox, h, replace } from "./dom.js";
import { ago, dateTime } from "./format.js";
import { pick, refreshUnread } from "./session.js";
import { busy } from "./ui.js";

export class Bell {
  constructor() {
    this.count = h("span", { class: "bell-count", hidden: true });
    this.label = h("span", { class: "visually-hidden" }, "Notifications");
    this.button = h("button", {
      class: "btn icon", type: "button", id: "bell", "aria-expanded": "false",
      "aria-controls": "notifications", onclick: () => this.toggle(),
    }, bellIcon(), this.label, this.count);
    this.list = h("div");
    this.errors = errorBox();
    this.markAll = h("button", { class: "btn small", type: "button", onclick: () => this.readAll() }, "Mark all read");
    this.panel = h("section", {
      class: "popover", id: "notifications", hidden: true, "aria-label": "Notifications",
    },
    h("header", { class: "row" }, h("h2", { class: "small", tabindex: "-1" }, "Notifications"),
      h("span", { class: "spacer" }), this.markAll),
    this.errors, this.list);
    this.el = h("span", {}, this.button, this.panel);
    this._outside = (e) => { if (!this.el.contains(e.target)) this.close(); };
    this._escape = (e) => {
      if (e.key === "Escape") {
        this.close();
        this.button.focus();
      }
    };
  }

  setCount(n) {
    this.count.hidden = !n;
    this.count.textContent = n > 99 ? "99+" : String(n);
    this.label.textContent = n ? `Notifications, ${n} unread` : "Notifications";
  }

  toggle() {
    if (this.panel.hidden) this.open();
    else this.close();
  }

  async open() {
    this.panel.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    document.addEventListener("click", this._outside);
    document.addEventListener("keydown", this._escape);
    this.panel.querySelector("h2").focus();
    await this.load();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
    document.removeEventListener("click", this._outside);
    document.removeEventListener("keydown", this._escape);
  }

  async load() {
    replace(this.list, h("p", { class: "muted" }, "Loading…"));
    await busy(this.panel, this.errors, async () => {
      const data = await api.get("/api/notifications?limit=30");
      const items = Array.isArray(data) ? data : pick(data, "notifications", "items") || [];
      replace(this.list, items.length ? items.map(renderItem)
        : h("p", { class: "empty" }, "No notifications."));
    });
  }

  async readAll() {
    await busy(this.panel, this.errors, async () => {
      await api.post("/api/notifications/read-all", {});
      await refreshUnread();
      await this.load();
    });
  }
}

function renderItem(n) {
  const unread = !(pick(n, "read", "is_read") || pick(n, "read_at", "readAt"));
  const level = pick(n, "level", "severity") || "info";
  const when = pick(n, "created_at", "createdAt", "time", "ts");
  return h("article", { class: `notif${unread ? " unread" : ""}` },
    h("div", { class: "row" },
      h("span", { class: `badge ${level === "error" ? "bad" : level === "warning" ? "warn" : "info"}` }, level),
      h("span", { class: "notif-title" }, pick(n, "title", "kind", "type") || "Notice")),
    pick(n, "message", "body") ? h("p", { class: "small" }, pick(n, "message", "body")) : null,
    h("time", { class: "when", title: dateTime(when) }, ago(when)));
}

function bellIcon() {
  const s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  s.setAttribute("viewBox", "0 0 24 24");
  s.setAttribute("width", "20");
  s.setAttribute("height", "20");
  s.setAttribute("aria-hidden", "true");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", "M12 2a6 6 0 0 0-6 6v3.6L4.3 15A1 1 0 0 0 5.2 16.5h13.6a1 1 0 0 0 .9-1.5L18 11.6V8a6 6 0 0 0-6-6zm-2.5 16a2.5 2.5 0 0 0 5 0z");
  p.setAttribute("fill", "currentColor");
  s.append(p);
  return s;
}
