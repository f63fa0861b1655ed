// Entry point: the route table, session checks and page life cycle.
// Each page is a module in pages/ exporting ``title`` and
// ``render(ctx)`` (which may return a cleanup function).

import { onApiError } from "./api.js";
import { ApiError, api } from "./api.js";
import { errorBox, h, replace, setErrorExtras } from "./dom.js";
import { leavePage } from "./drafts.js";
import { Router, matchRoute } from "./router.js";
import { refreshCluster, session, update } from "./session.js";
import { Shell, logout } from "./shell.js";

export const ROUTES = [
  { path: "/setup", module: "setup", public: true },
  { path: "/login", module: "login", public: true },
  { path: "/", module: "dashboard", title: "Dashboard", nav: true },
  { path: "/query-log", module: "querylog", title: "Query log", nav: true },
  { path: "/filtering", module: "filtering", title: "Filtering", nav: true },
  { path: "/clients", module: "clients", title: "Clients", nav: true },
  { path: "/local-dns", module: "localdns", title: "Local DNS", nav: true },
  { path: "/settings", module: "settings", title: "DNS settings", nav: true },
  { path: "/cluster", module: "cluster", title: "Cluster / HA", nav: true },
  { path: "/status", module: "status", title: "Status", nav: true },
  { path: "/account", module: "account", title: "Account" },
];

const app = document.getElementById("app");
let shell = null;
let current = null; // {cleanup: [], seq}
let seq = 0;
let sessionEnded = false; // the next page change is the way to the login page

const router = new Router((loc) => show(loc));

onApiError((err) => {
  if (err.status === 401 && current && !current.public) {
    // The session ended (expired, logged out elsewhere, or replaced when
    // this node joined a cluster): the login page says so.
    update({ user: null, cluster: null, unread: 0 });
    sessionEnded = true; // keep the page's unsent form values (drafts.js)
    const next = encodeURIComponent(location.pathname + location.search);
    router.go(`/login?next=${next}&ended=1`, { replace: true });
  } else if (err.code === "FOLLOWER_READONLY") {
    refreshCluster(); // the node became a follower: show the banner now
  }
});

// Under 409 FOLLOWER_READONLY (e.g. a page left open across a leader
// change): a link to the leader's UI, once the fresh cluster status names it.
setErrorExtras((err) => {
  if (err.code !== "FOLLOWER_READONLY") return null;
  const slot = h("span", { class: "error-extra" });
  refreshCluster().then((c) => {
    const url = c && c.leaderUrl;
    if (!url || !/^https?:\/\//i.test(url)) return;
    let origin = null;
    try { origin = new URL(url).origin; } catch { return; }
    if (origin === location.origin) return; // this very address: no use
    replace(slot, " ", h("a", { href: url, "data-external": "", rel: "noopener" }, `Open the leader UI (${url})`));
  });
  return slot;
});

// Offline: say so at once, and that nothing typed is lost.
const offline = h("div", { class: "offline-banner", role: "alert", hidden: navigator.onLine },
  "This device is offline: Sentinel cannot be reached. What you type stays on this page; send it when the connection is back.");
document.body.prepend(offline);
window.addEventListener("offline", () => { offline.hidden = false; });
window.addEventListener("online", () => { offline.hidden = true; });

let firstSeq = null;

async function show(loc) {
  const mySeq = ++seq;
  if (firstSeq === null) firstSeq = mySeq;
  if (current) for (const fn of current.cleanup) fn();
  leavePage(sessionEnded);
  sessionEnded = false;
  const found = matchRoute(ROUTES, loc.pathname);
  const route = found ? found.route : { module: "notfound", title: "Not found" };
  current = { cleanup: [], public: Boolean(route.public) };

  if (!route.public && !session.user) {
    let status;
    try {
      status = await api.get("/api/auth/status");
    } catch (err) {
      return fatal(err);
    }
    if (mySeq !== seq) return;
    if (!status.configured) return router.go("/setup", { replace: true });
    if (!status.authenticated) {
      return router.go("/login?next=" + encodeURIComponent(loc.pathname + loc.search), { replace: true });
    }
    update({ user: status.username });
  }

  let root;
  if (route.public) {
    if (shell) { shell.unmount(); shell = null; }
    root = h("div", { id: "main", tabindex: "-1" });
    replace(app, root);
  } else {
    if (!shell) {
      shell = new Shell(ROUTES, doLogout);
      shell.mount(app);
    }
    shell.setActive(route);
    root = h("div", { class: "page" });
    replace(shell.main, root);
  }
  document.title = route.title ? `${route.title} · Sentinel` : "Sentinel";

  const ctx = {
    root,
    route,
    rest: found ? found.rest : [],
    params: new URLSearchParams(loc.search),
    go: (path, opts) => router.go(path, opts),
    setQuery: (params) => router.setQuery(params),
    loggedIn: async () => {
      const status = await api.get("/api/auth/status");
      update({ user: status.username });
    },
    every: (fn, ms) => {
      const t = setInterval(() => { if (!document.hidden) fn(); }, ms);
      current.cleanup.push(() => clearInterval(t));
    },
    onCleanup: (fn) => current.cleanup.push(fn),
    alive: () => mySeq === seq,
  };
  try {
    const mod = await import(`./pages/${route.module}.js`);
    if (mySeq !== seq) return;
    const cleanup = await mod.render(ctx);
    if (typeof cleanup === "function") current.cleanup.push(cleanup);
  } catch (failure) {
    if (mySeq !== seq) return;
    // A page module that cannot be fetched (offline, the daemon stopped or
    // was upgraded meanwhile) fails with the browser's own words
    // ("Failed to fetch dynamically imported module ..."): say it plainly.
    const err = failure instanceof ApiError || failure?.name === "AbortError" ? failure
      : new ApiError(0, "NETWORK", "This page could not be loaded: Sentinel cannot be reached, or was updated meanwhile. Check the connection and try again.");
    // The page could not load (e.g. 503 while the database is down): say
    // which page, why, and offer to try again without a reload.
    const box = errorBox();
    box.set(err);
    if (!root.querySelector("h1") && route.title) root.prepend(h("h1", {}, route.title));
    root.append(box, h("button", { class: "btn", type: "button", onclick: () => show(location) }, "Try again"));
  }
  if (mySeq !== seq) return;
  // After an in-app navigation, move focus to the new page's heading (so
  // screen readers announce it); on the first load, keep the browser's
  // focus order (Tab reaches the skip link first).
  const heading = root.querySelector("h1");
  if (mySeq > firstSeq && heading && !document.activeElement?.matches("input, select, textarea")) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

async function doLogout() {
  await logout();
  update({ user: null, cluster: null, unread: 0 });
  router.go("/login", { replace: true });
}

function fatal(err) {
  const box = errorBox();
  box.set(err);
  replace(app, h("main", { id: "main", class: "boot" }, h("h1", {}, "Sentinel"), box,
    h("button", { class: "btn", type: "button", onclick: () => show(location) }, "Try again")));
}

show(location);
