// First run: create the admin account (public page, only while none exists).

import { ApiError, api } from "../api.js";
import { errorBox, field, h } from "../dom.js";
import { onSubmit } from "../ui.js";

export const title = "Welcome";

export function authFrame(heading, ...content) {
  return h("div", { class: "auth-page" },
    h("section", { class: "card auth-card", "aria-labelledby": "auth-title" },
      h("div", { class: "brand" }, h("img", { src: "/favicon.svg", alt: "" }), "Sentinel"),
      h("h1", { id: "auth-title", tabindex: "-1" }, heading),
      content));
}

export async function render(ctx) {
  const status = await api.get("/api/auth/status");
  if (status.configured) return ctx.go("/login", { replace: true });

  const errors = errorBox();
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8 });
  const form = h("form", { novalidate: true },
    field("Admin username", h("input", { name: "username", type: "text", autocomplete: "username", required: true, value: "admin" }),
      "Letters, digits and . _ @ - (up to 64)."),
    field("Password", password, "At least 8 characters."),
    field("Repeat password", h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true })),
    errors,
    h("button", { class: "btn primary", type: "submit" }, "Create admin account"));
  onSubmit(form, errors, async (data) => {
    if (data.get("password") !== data.get("confirm")) {
      form.elements.confirm.setAttribute("aria-invalid", "true");
      throw new ApiError(400, "MISMATCH", "The two passwords are not the same.");
    }
    await api.post("/api/auth/setup", {
      username: data.get("username").trim(),
      password: data.get("password"),
    });
    await ctx.loggedIn();
    ctx.go("/", { replace: true });
  });
  ctx.root.append(authFrame("Welcome to Sentinel",
    h("p", {}, "Create the admin account to finish setting up this node."),
    form));
  form.querySelector("input").focus();
}
