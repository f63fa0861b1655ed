"""
GET /api/system/status: version, uptime, the store, and whatever other
subsystems report.  A subsystem adds ``providers[name] = callable`` (->
a JSON-able dict, or a Deferred/coroutine of one); a provider that fails
or takes longer than ``timeout`` shows as ``{"error": ...}`` instead of
failing the whole answer.
"""

import platform

import twisted
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from sentinel import __version__
from sentinel.api.base import endpoint
from sentinel.api.schemas import TIMESTAMP, nullable, obj

log = Logger()

STATUS = obj({
    "version": {"type": "string"}, "python": {"type": "string"},
    "twisted": {"type": "string"},
    "started_at": TIMESTAMP, "uptime_seconds": {"type": "number", "minimum": 0},
    "store_backend": {"type": "string", "enum": ["sqlite", "postgres"]},
    "store_available": {"type": "boolean"},
    "revision": nullable({"type": "integer", "minimum": 0}),
    "components": {"type": "object", "additionalProperties": {"type": "object"}},
}, required=["version", "started_at", "uptime_seconds", "store_backend", "store_available",
             "revision", "components"])


class SystemApi:
    def __init__(self, store, providers, clock, started_at=None, timeout=2.0):
        self._store = store
        self._providers = providers
        self._clock = clock
        self._started = clock.seconds() if started_at is None else started_at
        self._timeout = timeout

    async def _component(self, name, provider):
        try:
            d = maybeDeferred(provider)
            d.addTimeout(self._timeout, self._clock)
            value = await d
        except Exception as e:
            log.failure("status provider {name} failed", name=name)
            return {"error": f"unavailable ({type(e).__name__})"}
        return value if isinstance(value, dict) else {"value": value}

    @endpoint("GET", "/api/system/status", tag="system", response=STATUS,
              summary="This node: version, uptime, store, and every subsystem's status")
    async def status(self, call):
        now = self._clock.seconds()
        try:
            revision = await self._store.revision()
        except Exception:
            revision = None
        components = {}
        for name, provider in sorted(self._providers.items()):
            components[name] = await self._component(name, provider)
        return {
            "version": __version__,
            "python": platform.python_version(),
            "twisted": twisted.__version__,
            "started_at": self._started,
            "uptime_seconds": max(0.0, now - self._started),
            "store_backend": self._store.dialect,
            "store_available": bool(self._store.available),
            "revision": revision,
            "components": components,
        }
