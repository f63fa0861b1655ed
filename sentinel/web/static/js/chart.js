// A small SVG area chart of queries and blocked queries over time.
// points: [{t: Date, total: n, blocked: n}], oldest first.

import { h, svg } from "./dom.js";
import { number } from "./format.js";

const H = 220;
const PAD = { l: 44, r: 8, t: 10, b: 24 };

/**
 * The top of the scale: a round number, and an even one, as the middle grid
 * line is labelled with its half (a top of 5 labelled its middle "3").
 */
export function niceMax(v) {
  if (v <= 4) return 4;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= v && (m * mag) % 2 === 0) return m * mag;
  return 10 * mag;
}

function area(points, key, x, y) {
  if (!points.length) return "";
  let d = `M${x(0)},${y(0)}`;
  points.forEach((p, i) => { d += ` L${x(i)},${y(p[key])}`; });
  d += ` L${x(points.length - 1)},${y(0)} Z`;
  return d;
}

/** width: the drawing width in CSS pixels (so text stays readable on a phone). */
export function queryChart(points, label, width = 720) {
  const W = Math.max(300, Math.round(width));
  const max = niceMax(Math.max(1, ...points.map((p) => p.total)));
  const n = Math.max(1, points.length - 1);
  const x = (i) => (PAD.l + (i / n) * (W - PAD.l - PAD.r)).toFixed(1);
  const y = (v) => (H - PAD.b - (v / max) * (H - PAD.t - PAD.b)).toFixed(1);
  const grid = [0, 0.5, 1].map((f) => [
    svg("line", { class: "grid-line", x1: PAD.l, x2: W - PAD.r, y1: y(max * f), y2: y(max * f) }),
    svg("text", { x: PAD.l - 6, y: Number(y(max * f)) + 4, "text-anchor": "end" }, number(Math.round(max * f))),
  ]);
  const ticks = [];
  const step = Math.max(1, Math.ceil(points.length / Math.max(2, Math.floor(W / 110))));
  for (let i = 0; i < points.length; i += step) {
    const t = points[i].t;
    ticks.push(svg("text", { x: x(i), y: H - 6, "text-anchor": "middle" },
      t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
  }
  const total = points.reduce((s, p) => s + p.total, 0);
  const blocked = points.reduce((s, p) => s + p.blocked, 0);
  const summary = `${label}: ${number(total)} queries, ${number(blocked)} blocked.`;
  return h("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary },
      grid,
      svg("path", { class: "total", d: area(points, "total", x, y) }),
      svg("path", { class: "blocked", d: area(points, "blocked", x, y) }),
      ticks),
    h("figcaption", { class: "legend" },
      h("span", { class: "l-total" }, "Queries"), h("span", { class: "l-blocked" }, "Blocked")));
}
