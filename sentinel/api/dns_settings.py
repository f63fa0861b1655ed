"""
DNS settings and status:

- ``GET /api/dns/settings``: every field with its effective value.
- ``PUT /api/dns/settings``: change fields; fields left out keep their
  value.  Validated here (400 with the field) and stored as the synced
  ``setting``/``dns`` entity; the running server applies it within
  moments (no restart; the cache is flushed only when the upstreams
  change).  A follower refuses it (read-only guard).
- ``GET /api/dns/status``: upstreams in use and their health, cache size,
  self-probe, the on-link networks answered.
"""

from sentinel.api.base import ApiError, endpoint
from sentinel.dns.settings import KEY, KIND, SCHEMA, SettingsError, from_data, merged
from sentinel.dns.upstreamspec import parse_upstream

SETTINGS_RESPONSE = dict(SCHEMA, required=sorted(SCHEMA["properties"]))

_UPSTREAM_ROWS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["spec", "used", "healthy"],
        "properties": {
            "spec": {"type": "string"},
            "used": {"type": "boolean"},
            "healthy": {"type": "boolean"},
            "reason": {"type": "string"},
        },
    },
}

STATUS_RESPONSE = {
    "type": "object",
    "required": ["upstreams", "startup_upstreams", "healthy", "cache_entries",
                 "local_networks", "lan_upstreams"],
    "properties": {
        "local_networks": {
            "type": "array", "items": {"type": "string"},
            "description": "The networks attached to this node, answered while the "
                           "local_networks setting is on (empty: not read yet, or off).",
        },
        "healthy": {"type": "boolean"},
        "cache_entries": {"type": "integer"},
        "startup_upstreams": {"type": "array", "items": {"type": "string"}},
        "upstreams": _UPSTREAM_ROWS,
        "lan_upstreams": dict(_UPSTREAM_ROWS, description=(
            "The upstreams for private reverse lookups, single labels and names under "
            "home.arpa and local.")),
    },
}


class DnsSettingsApi:
    def __init__(self, store, runtime, probe=None):
        self._store = store
        self._runtime = runtime
        self._probe = probe

    @endpoint("GET", "/api/dns/settings", auth="admin", tag="dns",
              summary="DNS settings (effective values)", response=SETTINGS_RESPONSE)
    async def get(self, call):
        entity = await self._store.get(KIND, KEY)
        try:
            settings = from_data(entity.data if entity is not None else None)
        except SettingsError:
            settings = self._runtime.settings  # what is running; the log says why
        return settings.to_data()

    @endpoint("PUT", "/api/dns/settings", auth="admin", tag="dns", body=SCHEMA,
              summary="Change DNS settings (fields left out keep their value)",
              response=SETTINGS_RESPONSE, errors=(400, 409))
    async def put(self, call):
        changes = call.body
        for name in ("upstreams", "lan_upstreams"):
            self._check_loops(name, changes.get(name, ()))

        async def update(ctx):
            entity = await ctx.get(KIND, KEY)
            current = entity.data if entity is not None and isinstance(entity.data, dict) \
                else {}
            data = merged(current, changes)
            try:
                settings = from_data(data)
            except SettingsError as e:
                raise ApiError(400, "VALIDATION_ERROR", str(e),
                               [{"field": e.field, "message": e.message}]) from None
            await ctx.put(KIND, KEY, data)
            return settings

        settings = await self._store.transact(update)
        return settings.to_data()

    def _check_loops(self, name, upstreams):
        for i, text in enumerate(upstreams):
            try:
                spec = parse_upstream(text)
            except ValueError:
                continue  # reported with its field by validation
            if self._runtime.is_self(spec):
                field = f"{name}.{i}"
                message = f"{text!r} is this server itself (it would forward to itself)"
                raise ApiError(400, "VALIDATION_ERROR", f"{field}: {message}",
                               [{"field": field, "message": message}])

    @endpoint("GET", "/api/dns/status", auth="admin", tag="dns",
              summary="Upstreams in use, their health, cache and self-probe",
              response=STATUS_RESPONSE)
    async def status(self, call):
        runtime = self._runtime
        now = runtime.reactor.seconds()

        def rows(texts, forwarder):
            by_text = {up.text: up for up in forwarder.upstreams}
            out = []
            for text in texts:
                up = by_text.get(text)
                row = {"spec": text, "used": up is not None,
                       "healthy": up is not None and up.healthy(now)}
                if up is None:
                    row["reason"] = runtime.rejected_upstreams.get(text, "")
                out.append(row)
            return out

        upstreams = rows(runtime.effective_upstreams, runtime.engine.forwarder)
        return {
            "lan_upstreams": rows(runtime.lan_upstreams, runtime.engine.lan_forwarder),
            "healthy": bool(self._probe.healthy()) if self._probe is not None else True,
            "cache_entries": len(runtime.engine.cache),
            "startup_upstreams": list(runtime.base_upstreams),
            "upstreams": upstreams,
            "local_networks": [str(n) for n in runtime.onlink.current or ()]
            if runtime.settings is None or runtime.settings.local_networks else [],
        }
