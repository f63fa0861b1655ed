// Dashboard: totals and blocked share, queries over time, top lists,
// protection with pause/resume, and the cluster role at a glance.

import { api, listOf, pick, query } from "../api.js";
import { errorBox, h, replace, select } from "../dom.js";
import { ago, dateTime, number, percent, toDate } from "../format.js";
import { queryChart } from "../chart.js";
import { session, subscribe } from "../session.js";
import { busy, edit, toast } from "../ui.js";
import { badge, card, kv, pageHead } from "../widgets.js";

export const title = "Dashboard";

const WINDOWS = [["3600", "Last hour"], ["86400", "Last 24 hours"], ["604800", "Last 7 days"]];
const PAUSES = [["5", "5 minutes"], ["30", "30 minutes"], ["60", "1 hour"], ["480", "8 hours"], ["", "Until I resume"]];

export async function render(ctx) {
  const errors = errorBox();
  let windowSecs = Number(ctx.params.get("window") || 86400);
  const stats = h("div", { class: "grid stats" });
  const chart = h("div");
  const tops = h("div", { class: "grid" });
  const protection = h("div");
  const cluster = h("div");

  const windowSelect = select({
    "aria-label": "Time window",
    onchange: (e) => { windowSecs = Number(e.target.value); ctx.setQuery(new URLSearchParams({ window: e.target.value })); load(); },
  }, WINDOWS, String(windowSecs));

  ctx.root.append(
    pageHead("Dashboard", windowSelect),
    errors,
    h("div", { class: "stack" },
      stats,
      h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "prot-t" }, h("h2", { id: "prot-t" }, "Protection"), protection),
        h("section", { class: "card", "aria-labelledby": "cl-t" }, h("h2", { id: "cl-t" }, "Cluster"), cluster)),
      card("Queries over time", chart),
      tops));

  async function load() {
    await busy(ctx.root, errors, async () => {
      const until = Date.now() / 1000;
      const q = query({ since: until - windowSecs, until });
      const top = query({ since: until - windowSecs, until, limit: 10 });
      const [summary, series, domains, blocked, clients] = await Promise.all([
        api.get("/api/metrics/summary" + q),
        api.get("/api/metrics/timeseries" + q),
        api.get("/api/metrics/top-domains" + top),
        api.get("/api/metrics/top-blocked" + top),
        api.get("/api/metrics/top-clients" + top),
      ]);
      drawStats(summary);
      const points = listOf(series, "points", "series", "buckets").map((p) => ({
        t: toDate(pick(p, "ts", "t")),
        total: Number(pick(p, "total", "queries") || 0),
        blocked: Number(pick(p, "blocked") || 0),
      }));
      replace(chart, points.length ? queryChart(points, WINDOWS.find((w) => w[0] === String(windowSecs))?.[1] || "", chart.clientWidth || 720)
        : h("p", { class: "empty" }, "No queries in this window yet."));
      replace(tops,
        topCard("Top domains", listOf(domains), "domain"),
        topCard("Top blocked domains", listOf(blocked), "blocked"),
        topCard("Top clients", listOf(clients), "client"));
    });
    await loadProtection();
  }

  function drawStats(s) {
    const total = Number(pick(s, "total", "queries") || 0);
    const blocked = Number(pick(s, "blocked") || 0);
    replace(stats,
      stat("Queries", number(total)),
      stat("Blocked", number(blocked)),
      stat("Blocked share", percent(blocked, total)),
      stat("Answered from cache", percent(Number(pick(s.by_decision || {}, "cached") || 0), total)),
      stat("Clients", number(pick(s, "clients"))));
  }

  async function loadProtection() {
    let state;
    try {
      state = await api.get("/api/protection");
    } catch (err) {
      replace(protection, h("p", { class: "muted" }, err.message));
      return;
    }
    const paused = Boolean(pick(state, "paused"));
    const until = pick(state, "until");
    const perr = errorBox();
    const minutes = select({ "aria-label": "Pause for" }, PAUSES, "30");
    const controls = paused
      ? edit(h("button", { class: "btn primary", type: "button", onclick: () => act(() => api.del("/api/protection/pause"), "Protection resumed.") }, "Resume protection"))
      : h("div", { class: "row" }, minutes, edit(h("button", {
        class: "btn", type: "button",
        onclick: () => act(() => api.post("/api/protection/pause",
          minutes.value ? { minutes: Number(minutes.value) } : {}), "Protection paused."),
      }, "Pause")));
    replace(protection,
      h("p", {}, paused ? badge("paused", "warn") : badge("on", "ok"), " ",
        paused ? (until ? `Filtering is paused until ${dateTime(until)} (${ago(until)}).` : "Filtering is paused until you resume it.")
          : "Filtering is on for every client."),
      controls, perr);

    async function act(fn, message) {
      await busy(protection, perr, async () => {
        await fn();
        toast(message);
        await loadProtection();
      });
    }
  }

  function drawCluster() {
    const c = session.cluster;
    if (!c) { replace(cluster, h("p", { class: "muted" }, "Loading…")); return; }
    replace(cluster, kv([
      ["Role", [badge(c.effectiveRole), c.vipOwner ? " (VIP owner)" : null]],
      c.configuredRole === "follower" ? ["Follower last sync", c.lastSync ? h("time", { title: dateTime(c.lastSync) }, ago(c.lastSync)) : "never"] : null,
      c.syncFailing ? ["Last error", h("span", { class: "badge bad" }, String(pick(c.lastError, "code", "message") || c.lastError))] : null,
      c.leaderUrl ? ["Leader URL", c.leaderUrl] : null,
    ]), h("p", {}, h("a", { href: "/cluster" }, "Cluster / HA settings")));
  }

  ctx.onCleanup(subscribe(drawCluster));
  drawCluster();
  ctx.every(load, 30000);
  await load();
}

function stat(label, value) {
  return h("div", { class: "card stat" }, h("span", { class: "label" }, label), h("span", { class: "value" }, value));
}

function topCard(title, list, kind) {
  const max = Math.max(1, ...list.map((i) => Number(i.count || 0)));
  return card(title, list.length ? h("ol", { class: "toplist" }, list.map((i) => {
    const count = Number(i.count || 0);
    const bar = h("span");
    bar.style.width = `${(100 * count) / max}%`;
    const filter = kind === "client" ? { client: i.name } : { domain: i.name, decision: kind === "blocked" ? "blocked" : "" };
    const label = kind === "client" && i.client_name ? `${i.client_name} (${i.name})` : i.name;
    return h("li", {}, h("div", { class: "name" },
      h("a", { href: "/query-log" + query(filter) }, label),
      h("div", { class: "bar", "aria-hidden": "true" }, bar)),
    h("span", { class: "count" }, number(count)));
  })) : h("p", { class: "empty" }, "Nothing yet."));
}
