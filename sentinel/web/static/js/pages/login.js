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
  const notice = await loginNotice(ctx.params.get("ended") === "1");
  const form = h("form", { novalidate: true },
    notice ? h("p", { class: "alert info", id: "login-notice", role: "status" }, notice) : null,
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

/**
 * Why the user is here, in plain words: their session ended, and/or this
 * node is a follower, whose admin accounts (and sessions) are the
 * leader's — so joining a cluster logs out whoever was logged in here.
 */
export async function loginNotice(ended) {
  let ready = null;
  try {
    ready = await api.get("/api/cluster/ready", { quiet: true });
  } catch (err) {
    ready = err.data; // 503 "not ready" still names the role
  }
  const follower = Boolean(ready && ready.role === "follower");
  const parts = [];
  if (ended) parts.push("Your session has ended.");
  if (follower) {
    parts.push("This node is a follower: it uses the leader's admin accounts and sessions (copied at every sync), so log in with the leader's admin username and password.");
  } else if (ended) {
    parts.push("Log in again to continue.");
  }
  return parts.join(" ") || null;
}

function nextPath(ctx) {
  return safeNext(ctx.params.get("next"));
}

/**
 * The page to go to after logging in: only a path inside this UI. The
 * browser reads "/\\host" like "//host" (another origin), which the
 * History API refuses with an exception; such a link leads to "/".
 */
export function safeNext(next) {
  if (!next || !next.startsWith("/")) return "/";
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return "/";
  }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}
