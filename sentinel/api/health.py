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
        "problems": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "what is wrong, by component, in one line each (e.g. roleFile, "
                           "nodeKey, store; policy: DNS filters with the last-known-good "
                           "policy from <time>, or without filtering, while the store "
                           "cannot be opened); present only when something is",
        },
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
    that want to take part in the health answer; problems: {name:
    callable() -> str or None}, one-line explanations of what is wrong.
    """

    def __init__(self, store, checks=None, problems=None):
        self._store = store
        self._checks = dict(checks or {})
        # {name: callable() -> one-line message or None}: shown, but only
        # the checks decide the status.
        self._problems = problems if problems is not None else {}

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
        problems = {name: message for name, describe in self._problems.items()
                    if (message := describe())}
        if problems:
            body["problems"] = problems
        return body if ok else Reply(503, body)

    @endpoint("GET", "/api/version", auth="none", tag="system",
              summary="Version of Sentinel and its runtime", response=VERSION_SCHEMA)
    async def version(self, call):
        return {
            "version": __version__,
            "python": platform.python_version(),
            "twisted": twisted.__version__,
        }
