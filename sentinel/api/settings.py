"""
Generic UI preferences: GET/PUT/PATCH /api/settings/ui, stored as the
synced ``setting`` entity ``ui`` (so every node shows the same).  DNS
settings (/api/dns/settings) and the protection pause belong to their own
areas.
"""

from sentinel.api.base import ApiError, endpoint
from sentinel.api.schemas import nullable
from sentinel.store.entities import encode

KIND, KEY = "setting", "ui"
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULTS = {"theme": "system", "time_format": "24h", "page_size": 50, "refresh_seconds": 10}
KNOWN = {
    "theme": {"enum": ["system", "light", "dark"]},
    "language": {"type": "string", "maxLength": 35,
                 "pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                 "description": "BCP 47 tag, e.g. en or pt-BR"},
    "time_format": {"enum": ["24h", "12h"]},
    "page_size": {"type": "integer", "minimum": 10, "maximum": 500},
    "refresh_seconds": {"type": "integer", "minimum": 0, "maximum": 3600,
                        "description": "dashboard refresh; 0 = never"},
}


def _schema(known):
    return {
        "type": "object",
        "properties": known,
        "propertyNames": {"pattern": KEY_PATTERN},
        "maxProperties": 100,
        "description": "known keys are typed; other lowercase keys hold any JSON the UI "
                       "wants to keep (16 KiB in all)",
    }


PREFS = _schema(KNOWN)
PATCH = _schema({name: nullable(schema) for name, schema in KNOWN.items()})
MAX_BODY = 16 * 1024


class SettingsApi:
    def __init__(self, store):
        self._store = store

    async def _stored(self):
        entity = await self._store.get(KIND, KEY)
        data = entity.data if entity else {}
        return data if isinstance(data, dict) else {}

    @endpoint("GET", "/api/settings/ui", tag="settings", response=PREFS,
              summary="UI preferences (defaults filled in)")
    async def get(self, call):
        return dict(DEFAULTS, **await self._stored())

    @endpoint("PUT", "/api/settings/ui", tag="settings", body=PREFS, response=PREFS,
              max_body=MAX_BODY, summary="Replace the UI preferences")
    async def put(self, call):
        await self._store.put(KIND, KEY, call.body)
        return dict(DEFAULTS, **call.body)

    @endpoint("PATCH", "/api/settings/ui", tag="settings", body=PATCH, response=PREFS,
              max_body=MAX_BODY,
              summary="Change some UI preferences (null removes a key)")
    async def patch(self, call):
        def merge(current):
            merged = dict(current)
            for name, value in call.body.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = value
            return merged

        async def change(ctx):
            entity = await ctx.get(KIND, KEY)
            current = entity.data if entity and isinstance(entity.data, dict) else {}
            merged = merge(current)
            # PUT's limit holds for what PATCHes add up to, as stored (the
            # backup import checks the same size).
            size = len(encode(merged).encode())
            if size > MAX_BODY:
                raise ApiError(413, "BODY_TOO_LARGE",
                               f"The UI preferences would be {size} bytes, larger than the "
                               f"{MAX_BODY} bytes they may take; remove some keys (null) "
                               f"first. Nothing was changed.")
            await ctx.put(KIND, KEY, merged)
            return merged

        return dict(DEFAULTS, **await self._store.transact(change))
