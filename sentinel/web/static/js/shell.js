// The frame around every logged-in page: top bar (brand, cluster badge,
// notifications bell, user, log out), the follower read-only banner, the
// navigation and the main area.  It keeps the cluster state fresh.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { ago } from "./format.js";
import { Bell } from "./notifications.js";
import { refreshCluster, refreshUnread, session, subscribe } from "./session.js";
import { applyReadOnly, setReadOnly } from "./ui.js";

const POLL_MS = 15000;

export class Shell {
  constructor(routes, onLogout) {
    this.routes = routes;
    this.badge = h("a", { class: "badge plain", href: "/status", id: "cluster-badge" }, "…");
    this.bell = new Bell();
    this.user = h("span", { class: "muted hide-narrow" });
    const logout = h("button", { class: "btn small", type: "button", onclick: onLogout }, "Log out");
    this.banner = h("div", { class: "banner", id: "readonly-banner", role: "region", "aria-label": "Read-only notice", hidden: true });
    this.nav = h("nav", { class: "sidenav", "aria-label": "Main" },
      h("ul", {}, routes.filter((r) => r.nav).map((r) =>
        h("li", {}, h("a", { href: r.path, dataset: { path: r.path } }, r.title)))));
    this.main = h("main", { id: "main", tabindex: "-1" });
    this.el = h("div", { class: "shell" },
      h("header", { class: "topbar" },
        h("a", { class: "brand", href: "/" }, h("img", { src: "/favicon.svg", alt: "" }), "Sentinel"),
        this.badge,
        h("span", { class: "spacer" }),
        this.bell.el,
        h("span", { class: "topbar-user" }, this.user, h("a", { href: "/account", class: "btn small" }, "Account"), logout)),
      this.banner,
      h("div", { class: "layout" }, this.nav, this.main));
    new MutationObserver(() => applyReadOnly(this.main)).observe(this.main, { childList: true, subtree: true });
    this.unsubscribe = subscribe(() => this.render());
    this.timer = null;
  }

  mount(container) {
    replace(container, this.el);
    this.render();
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  unmount() {
    clearInterval(this.timer);
    this.unsubscribe();
    this.bell.close();
    this.el.remove();
  }

  poll() {
    if (document.hidden) return;
    refreshCluster();
    refreshUnread();
  }

  setActive(route) {
    for (const a of this.nav.querySelectorAll("a")) {
      if (a.dataset.path === route.path) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  render() {
    this.user.textContent = session.user || "";
    this.bell.setCount(session.unread);
    const c = session.cluster;
    setReadOnly(Boolean(c && c.readOnly));
    renderBadge(this.badge, c);
    renderBanner(this.banner, c);
  }
}

function roleName(role) {
  return { leader: "Leader", follower: "Follower", standalone: "Standalone" }[role] || role || "…";
}

function renderBadge(badge, c) {
  if (!c) {
    badge.className = "badge plain";
    badge.textContent = "…";
    return;
  }
  let kind = "info";
  let text = roleName(c.effectiveRole);
  if (c.vipOwner) text += " (VIP owner)";
  if (c.effectiveRole !== c.configuredRole) text += ` (configured ${c.configuredRole})`;
  if (c.configuredRole === "follower") {
    text += c.lastSync ? ` · synced ${ago(c.lastSync)}` : " · never synced";
    kind = c.syncFailing ? "bad" : "ok";
  } else if (c.effectiveRole === "leader") {
    kind = "ok";
  }
  badge.className = `badge ${kind}`;
  badge.textContent = text;
  badge.setAttribute("aria-label", `Cluster role: ${text}. Open status.`);
}

function renderBanner(banner, c) {
  if (!c || !c.readOnly) {
    banner.hidden = true;
    return;
  }
  // #readonly-note describes every read-only control (see ui.js)
  const parts = [h("strong", {}, "Read-only:"), " ",
    h("span", { id: "readonly-note" }, "This node is a follower. Make changes on the leader/VIP."),
    h("span", {}, "Edit controls here are marked read-only: a change tried on this node is refused, and the page shows its answer.")];
  if (c.leaderUrl && /^https?:\/\//i.test(c.leaderUrl)) {
    parts.push(h("a", { href: c.leaderUrl, "data-external": "", rel: "noopener" }, `Open the leader UI (${c.leaderUrl})`));
  }
  if (c.failover) parts.push(h("span", {}, "Failover active: the leader is unreachable."));
  replace(banner, parts);
  banner.hidden = false;
}

export async function logout() {
  try {
    await api.post("/api/auth/logout");
  } catch {
    /* the session is gone either way for this page */
  }
}
