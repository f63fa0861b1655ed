"""Liveness and version: GET /api/health, GET /api/version."""

import platform

import twisted

from sentinel import __version__
from sentinel.api.base import Reply, endpoint

HEALTH_SCHEMA = {
    "type": "object",
    "required": ["ok", "store"],
    "properties": {
        "ok": {"type": "boolean"},
        "store": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}

VERSION_SCHEMA = {
    "type": "object",
    "required": ["version"],
    "properties": {
        "version": {"type": "string"},
        "python": {"type": "string"},
        "twisted": {"type": "string"},
    },
}


class HealthApi:
    """
    checks: {name: callable() -> bool} for other subsystems (e.g. "dns")
    that want to take part in the health answer.
    """

    def __init__(self, store, checks=None):
        self._store = store
        self._checks = dict(checks or {})

    def add_check(self, name, check):
        self._checks[name] = check

    @endpoint("GET", "/api/health", auth="none", tag="system",
              summary="Liveness: 200 when the daemon and its store are healthy, else 503",
              response=HEALTH_SCHEMA, errors=(503,))
    async def health(self, call):
        checks = {name: bool(check()) for name, check in self._checks.items()}
        store_ok = bool(self._store.available)
        ok = store_ok and all(checks.values())
        body = {"ok": ok, "store": "ok" if store_ok else "unavailable", "checks": checks}
        return body if ok else Reply(503, body)

    @endpoint("GET", "/api/version", auth="none", tag="system",
              summary="Version of Sentinel and its runtime", response=VERSION_SCHEMA)
    async def version(self, call):
        return {
            "version": __version__,
            "python": platform.python_version(),
            "twisted": twisted.__version__,
        }
