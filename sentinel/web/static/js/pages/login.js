// Login (public page).

import { api } from "../api.js";
import { errorBox, field, h } from "../dom.js";
import { onSubmit } from "../ui.js";
import { authFrame } from "./setup.js";

export const title = "Log in";

export async function render(ctx) {
  const status = await api.get("/api/auth/status");
  if (!status.configured) return ctx.go("/setup", { replace: true });
  if (status.authenticated) return ctx.go(nextPath(ctx), { replace: true });

  const errors = errorBox();
  const form = h("form", { novalidate: true },
    field("Username", h("input", { name: "username", type: "text", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    errors,
    h("button", { class: "btn primary", type: "submit" }, "Log in"));
  onSubmit(form, errors, async (data) => {
    await api.post("/api/auth/login", {
      username: data.get("username").trim(),
      password: data.get("password"),
    });
    await ctx.loggedIn();
    ctx.go(nextPath(ctx), { replace: true });
  });
  ctx.root.append(authFrame("Log in", form));
  form.querySelector("input").focus();
}

function nextPath(ctx) {
  const next = ctx.params.get("next") || "/";
  // only paths inside this UI (never another origin)
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}
