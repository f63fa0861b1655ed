// Filtering: blocklists, manual rules and the blocking mode, one tab each.

import { h } from "../dom.js";
import { pageHead, tabs } from "../widgets.js";

export const title = "Filtering";

const TABS = [
  ["/filtering", "Blocklists", "../filtering/blocklists.js"],
  ["/filtering/rules", "Rules", "../filtering/rules.js"],
  ["/filtering/blocking-mode", "Blocking mode", "../filtering/blockmode.js"],
];

export async function render(ctx) {
  const path = ctx.rest.length ? `/filtering/${ctx.rest.join("/")}` : "/filtering";
  const tab = TABS.find(([p]) => p === path);
  if (!tab) return ctx.go("/filtering", { replace: true });
  const body = h("div", { class: "stack" });
  ctx.root.append(pageHead("Filtering"), tabs("Filtering sections", TABS, path), body);
  const mod = await import(tab[2]);
  await mod.render(body, ctx);
}
