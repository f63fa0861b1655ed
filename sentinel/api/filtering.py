"""
Filtering settings: GET/PUT /api/filtering/settings (time zone of
schedules, blocklist refresh interval, query-log retention) and
GET /api/filtering/status (the policy in force).
"""

from sentinel.api.base import endpoint
from sentinel.filtering import schedule as sched
from sentinel.filtering import settings
from sentinel.filtering.crud import invalid
from sentinel.filtering.model import Invalid

SETTINGS = dict(settings.FILTERING_SCHEMA, required=sorted(settings.FILTERING_DEFAULTS))
SETTINGS["properties"] = dict(SETTINGS["properties"],
                              effective_time_zone={"type": "string", "readOnly": True})
STATUS = {
    "type": "object",
    "properties": {
        "revision": {"type": "integer", "description": "configuration revision enforced"},
        "builds": {"type": "integer"},
        "last_build_seconds": {"type": "number", "description": "compile + swap"},
        "last_prepare_seconds": {"type": "number",
                                 "description": "load, decode and merge new list contents"},
        "blocked_domains": {"type": "integer", "description": "names in merged list sets"},
        "paused_until": {"type": ["number", "null"]},
        "paused": {"type": "boolean"},
        "next_change": {"type": ["number", "null"],
                        "description": "next pause expiry or schedule boundary"},
        "time_zone": {"type": "string"},
    },
}


class FilteringApi:
    def __init__(self, store, engine):
        self.store = store
        self.engine = engine

    async def _current(self):
        entity = await self.store.get("setting", settings.FILTERING)
        out = settings.filtering(entity.data if entity else None)
        out["effective_time_zone"] = str(settings.time_zone(out))
        return out

    @endpoint("GET", "/api/filtering/settings", tag="filtering", summary="Filtering settings",
              response=SETTINGS)
    async def get_settings(self, call):
        return await self._current()

    @endpoint("PUT", "/api/filtering/settings", tag="filtering",
              summary="Change filtering settings (fields left out keep their value)",
              body=settings.FILTERING_SCHEMA, response=SETTINGS, errors=(400,))
    async def put_settings(self, call):
        zone = call.body.get("time_zone")
        if zone:
            try:
                sched.zone(zone)
            except sched.BadSchedule as e:
                raise invalid(Invalid("time_zone", str(e))) from None

        async def tx(ctx):
            entity = await ctx.get("setting", settings.FILTERING)
            data = settings.filtering(entity.data if entity else None)
            data.update(call.body)
            await ctx.put("setting", settings.FILTERING, data)

        await self.store.transact(tx)
        return await self._current()

    @endpoint("GET", "/api/filtering/status", tag="filtering",
              summary="The policy snapshot in force on this node", response=STATUS)
    async def status(self, call):
        return self.engine.status()
