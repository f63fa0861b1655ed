// Unknown UI path.

import { h } from "../dom.js";

export const title = "Not found";

export function render(ctx) {
  ctx.root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Page not found")),
    h("p", {}, "There is no page at this address. ", h("a", { href: "/" }, "Go to the dashboard"), "."));
}
