// Account: change the admin password; API tokens for scripts.

import { ApiError, api } from "../api.js";
import { errorBox, field, h, replace } from "../dom.js";
import { dateTime } from "../format.js";
import { session } from "../session.js";
import { busy, confirmDialog, copyText, edit, onSubmit, toast } from "../ui.js";

export const title = "Account";

export async function render(ctx) {
  ctx.root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Account")),
    h("div", { class: "grid" }, passwordCard(), tokensCard()));
}

function passwordCard() {
  const errors = errorBox();
  const form = h("form", { novalidate: true },
    h("p", { class: "muted" }, `Logged in as ${session.user}. Changing the password ends your other sessions.`),
    field("Current password", h("input", { name: "current_password", type: "password", autocomplete: "current-password", required: true })),
    field("New password", h("input", { name: "new_password", type: "password", autocomplete: "new-password", required: true, minlength: 8 }), "At least 8 characters."),
    field("Repeat new password", h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true })),
    errors,
    edit(h("button", { class: "btn primary", type: "submit" }, "Change password")));
  onSubmit(form, errors, async (data) => {
    if (data.get("new_password") !== data.get("confirm")) {
      throw new ApiError(400, "MISMATCH", "The two new passwords are not the same.");
    }
    try {
      await api.post("/api/auth/change-password", {
        current_password: data.get("current_password"),
        new_password: data.get("new_password"),
      });
    } catch (err) {
      // the answer names no field: it is the current password that is wrong
      if (err.code === "WRONG_PASSWORD" && !err.details) err.details = [{ field: "current_password", message: err.message }];
      throw err;
    }
    form.reset();
    toast("Password changed.");
  });
  return h("section", { class: "card", "aria-labelledby": "pw-title" },
    h("h2", { id: "pw-title" }, "Password"), form);
}

function tokensCard() {
  const errors = errorBox();
  const list = h("div");
  const created = h("div");
  const load = () => busy(list, errors, async () => {
    const data = await api.get("/api/auth/tokens");
    const tokens = data.tokens || [];
    replace(list, tokens.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Created"), h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, tokens.map((t) => h("tr", {},
        h("td", {}, t.name),
        h("td", {}, dateTime(t.created_at)),
        h("td", { class: "actions" }, edit(h("button", {
          class: "btn small danger", type: "button", "aria-label": `Revoke token ${t.name}`,
          onclick: async () => {
            if (!(await confirmDialog(`Revoke the token "${t.name}"? Scripts using it stop working at once.`, { confirm: "Revoke", danger: true }))) return;
            await busy(list, errors, () => api.del(`/api/auth/tokens/${t.id}`));
            load();
          },
        }, "Revoke")))))))) : h("p", { class: "empty" }, "No API tokens."));
  });
  const form = h("form", { class: "row" },
    h("label", { for: "token-name", class: "visually-hidden" }, "Token name"),
    h("input", { id: "token-name", name: "name", type: "text", placeholder: "Token name, e.g. home-assistant", required: true }),
    edit(h("button", { class: "btn", type: "submit" }, "Create token")));
  onSubmit(form, errors, async (data) => {
    const t = await api.post("/api/auth/tokens", { name: data.get("name").trim() });
    form.reset();
    const box = h("textarea", { readonly: true, "aria-label": "New API token" });
    box.value = t.token;
    replace(created, h("div", { class: "alert ok" },
      h("p", {}, `Token "${t.name}" created. Copy it now: it is not shown again. Send it as "Authorization: Bearer <token>".`),
      h("div", { class: "codebox" }, box, h("button", {
        class: "btn", type: "button",
        onclick: async () => toast(await copyText(t.token, box) ? "Copied." : "Select the text and copy it.", "ok"),
      }, "Copy"))));
    load();
  });
  load();
  return h("section", { class: "card", "aria-labelledby": "tok-title" },
    h("h2", { id: "tok-title" }, "API tokens"),
    h("p", { class: "muted" }, "Tokens let scripts use the API without a password."),
    form, errors, created, list);
}
