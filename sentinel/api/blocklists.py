"""
Blocklists: /api/blocklists, and POST /api/blocklists/{id}/refresh.

The list contents are downloaded by the refresher (leader/standalone only)
and stored in the database, so a follower enforces them as soon as they
are synced.  A list's ``mode`` is enabled, disabled or shadow (log what it
would block, answer normally); ``global`` puts it into the selection of
every client that uses the global lists.
"""

from sentinel.api.base import ApiError, endpoint
from sentinel.filtering import model
from sentinel.filtering.crud import EntityArea, duplicate, item_schema, list_schema, others
from sentinel.filtering.crud import parse_id
from sentinel.filtering.refresher import release_blob

STATUS_FIELDS = {
    "domains": {"type": "integer", "description": "blocked names in the stored contents"},
    "allows": {"type": "integer", "description": "exceptions (@@||name^) in the contents"},
    "skipped": {"type": "integer", "description": "lines that were not understood"},
    "skipped_examples": {"type": "array", "items": {"type": "string"}},
    "updated_at": {"type": ["number", "null"], "description": "when the contents changed"},
    "checked_at": {"type": ["number", "null"], "description": "last download attempt"},
    "ok": {"type": ["boolean", "null"], "description": "outcome of the last attempt"},
    "last_error": {"type": "string"},
    "sha256": {"type": ["string", "null"]},
    "refreshing": {"type": "boolean", "description": "a download is queued or running"},
}
ITEM = item_schema(model.BLOCKLIST, STATUS_FIELDS)
ERRORS = (400, 404, 409)


class BlocklistsApi(EntityArea):
    """refresher: callable() -> the running BlocklistRefresher, or None."""

    kind = model.BLOCKLIST
    what = "blocklist"

    def __init__(self, store, refresher=lambda: None):
        super().__init__(store)
        self._refresher = refresher

    def present(self, list_id, data):
        out = super().present(list_id, data)
        content = data.get("content") if isinstance(data.get("content"), dict) else {}
        status = data.get("status") if isinstance(data.get("status"), dict) else {}
        out.update(
            domains=content.get("domains", 0), allows=content.get("allows", 0),
            skipped=content.get("skipped", 0),
            skipped_examples=content.get("skipped_examples", []),
            updated_at=content.get("updated_at"), sha256=content.get("sha256"),
            checked_at=status.get("checked_at"), ok=status.get("ok"),
            last_error=status.get("error", ""),
        )
        refresher = self._refresher()
        out["refreshing"] = bool(refresher is not None and refresher.refreshing(list_id))
        return out

    async def check_refs(self, ctx, list_id, data):
        for _, other in await others(ctx, model.BLOCKLIST, list_id):
            if other.get("url") == data["url"]:
                raise duplicate(f"A blocklist with this URL exists already "
                                f"({other.get('name')!r}).")

    async def before_delete(self, ctx, list_id, data):
        users = []
        for _, client in await others(ctx, model.CLIENT, None):
            ids = set(client.get("blocklists") or ())
            for s in client.get("schedules") or ():
                ids.update(s.get("blocklists") or ())
            if list_id in ids:
                users.append(str(client.get("name")))
        if users:
            raise ApiError(409, "IN_USE", f"The blocklist is used by clients: "
                                          f"{', '.join(sorted(users))}. Remove it there first.")
        content = data.get("content") if isinstance(data.get("content"), dict) else {}
        await release_blob(ctx, content.get("sha256"), list_id)

    @endpoint("GET", "/api/blocklists", tag="blocklists", summary="List blocklists",
              response=list_schema(ITEM))
    async def list_blocklists(self, call):
        return await self.list_items()

    @endpoint("POST", "/api/blocklists", tag="blocklists",
              summary="Add a blocklist (downloaded at once on the leader)",
              body=model.body_schema(model.BLOCKLIST), response=ITEM, status=201,
              errors=ERRORS)
    async def create_blocklist(self, call):
        return await self.create_item(call.body)

    @endpoint("GET", "/api/blocklists/{list_id}", tag="blocklists", summary="One blocklist",
              response=ITEM, errors=(404,))
    async def get_blocklist(self, call, list_id):
        return await self.get_item(list_id)

    @endpoint("PUT", "/api/blocklists/{list_id}", tag="blocklists",
              summary="Replace a blocklist's settings", body=model.body_schema(model.BLOCKLIST),
              response=ITEM, errors=ERRORS)
    async def replace_blocklist(self, call, list_id):
        return await self.update_item(list_id, call.body, partial=False)

    @endpoint("PATCH", "/api/blocklists/{list_id}", tag="blocklists",
              summary="Change some settings (e.g. mode)",
              body=model.body_schema(model.BLOCKLIST, partial=True), response=ITEM,
              errors=ERRORS)
    async def patch_blocklist(self, call, list_id):
        return await self.update_item(list_id, call.body, partial=True)

    @endpoint("DELETE", "/api/blocklists/{list_id}", tag="blocklists",
              summary="Delete a blocklist (refused while clients use it)", status=204,
              errors=(404, 409))
    async def delete_blocklist(self, call, list_id):
        return await self.delete_item(list_id)

    @endpoint("POST", "/api/blocklists/{list_id}/refresh", tag="blocklists",
              summary="Download the list now; answers when done", response=ITEM,
              errors=(404, 502, 503))
    async def refresh_blocklist(self, call, list_id):
        list_id = parse_id(list_id, self.what)
        await self.get_item(list_id)  # 404 first
        refresher = self._refresher()
        if refresher is None or not refresher.running:
            raise ApiError(503, "UNAVAILABLE",
                           "Blocklists are downloaded by the leader; refresh there.")
        data = await refresher.refresh(list_id)
        if data is None:
            raise ApiError(404, "NOT_FOUND", "No such blocklist.")
        item = self.present(list_id, data)
        if item["ok"] is False:
            raise ApiError(502, "REFRESH_FAILED", f"Refreshing failed: {item['last_error']}"
                           + (" (the previous contents stay in use)" if item["sha256"] else ""))
        return item
