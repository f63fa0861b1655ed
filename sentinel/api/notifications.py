"""
The notification feed (failover events, blocklist failures, ...):
list, unread count, mark read.  Notifications are node-local records, so
marking them read is allowed on a follower too (``readonly_exempt``).
"""

from sentinel.api.base import Reply, endpoint, not_found
from sentinel.api.schemas import ID, ID_PARAM, TIMESTAMP, array_of, nullable, obj

ITEM = obj({
    "id": ID, "ts": TIMESTAMP,
    "level": {"type": "string", "description": "info, warning or error"},
    "kind": {"type": "string"}, "message": {"type": "string"}, "read": {"type": "boolean"},
}, required=["id", "ts", "level", "kind", "message", "read"])
FEED = obj({"notifications": array_of(ITEM), "unread": {"type": "integer", "minimum": 0},
            "next_before_id": nullable(ID)},
           required=["notifications", "unread", "next_before_id"])
UNREAD = obj({"unread": {"type": "integer", "minimum": 0}}, required=["unread"])
MARKED = obj({"marked": {"type": "integer", "minimum": 0}}, required=["marked"])


class NotificationsApi:
    def __init__(self, store):
        self._store = store

    @endpoint("GET", "/api/notifications", tag="notifications", response=FEED,
              query={"limit": {"type": "integer", "minimum": 1, "maximum": 200},
                     "before_id": ID, "unread_only": {"type": "boolean"}},
              summary="Notifications, newest first (page with before_id)")
    async def feed(self, call):
        limit = call.query.get("limit", 50)
        items = await self._store.list_notifications(
            limit=limit, before_id=call.query.get("before_id"),
            unread_only=call.query.get("unread_only", False))
        unread = await self._store.unread_notifications()
        more = items[-1]["id"] if len(items) == limit and items else None
        return {"notifications": items, "unread": unread, "next_before_id": more}

    @endpoint("GET", "/api/notifications/unread-count", tag="notifications",
              response=UNREAD, summary="How many notifications are unread")
    async def unread(self, call):
        return {"unread": await self._store.unread_notifications()}

    @endpoint("POST", "/api/notifications/{notification_id}/read", tag="notifications",
              status=204, params={"notification_id": ID_PARAM}, readonly_exempt=True,
              errors=(404,), summary="Mark one notification read")
    async def read_one(self, call, notification_id):
        # The newest notification older than id+1 is the notification itself
        # if it exists.
        found = await self._store.list_notifications(limit=1, before_id=notification_id + 1)
        if not found or found[0]["id"] != notification_id:
            raise not_found("notification")
        await self._store.mark_notifications_read([notification_id])
        return Reply(204)

    @endpoint("POST", "/api/notifications/read-all", tag="notifications", response=MARKED,
              readonly_exempt=True, summary="Mark every notification read")
    async def read_all(self, call):
        return {"marked": await self._store.mark_notifications_read()}
