"""
Secrets the daemon needs in clear (API keys, passwords of upstream
services, ...): PUT /api/secrets/{name} (write-only), DELETE, and
GET /api/secrets/status, which says which are set -- never their values.
Subsystems announce the secrets they use in ``catalog`` (name ->
description), so the UI can show the ones still unset.
"""

from sentinel.api.base import Reply, endpoint, not_found
from sentinel.api.schemas import array_of, nullable, obj
from sentinel.secrets import NAME

NAME_PARAM = {"type": "string", "pattern": NAME.pattern,
              "description": "1-64 characters: lowercase letters, digits, _ . : -"}
VALUE = obj({"value": {"type": "string", "minLength": 1, "maxLength": 8192, "writeOnly": True}},
            required=["value"])
STATUS = obj({"secrets": array_of(obj({
    "name": {"type": "string"},
    "set": {"type": "boolean"},
    "readable": nullable({"type": "boolean", "description": (
        "false: stored but sealed under another node key (node.key lost or replaced; "
        "/api/health problems.nodeKey): set it again or restore the key; null when unset")}),
    "description": nullable({"type": "string"}),
}, required=["name", "set", "readable", "description"]))}, required=["secrets"])


class SecretsApi:
    def __init__(self, secrets, catalog=None):
        self._secrets = secrets
        self._catalog = catalog if catalog is not None else {}

    @endpoint("GET", "/api/secrets/status", tag="secrets", response=STATUS,
              summary="Which secrets are set (never their values)")
    async def status(self, call):
        stored = await self._secrets.readable()
        names = sorted(set(stored) | set(self._catalog))
        return {"secrets": [{"name": n, "set": n in stored, "readable": stored.get(n),
                             "description": self._catalog.get(n)} for n in names]}

    @endpoint("PUT", "/api/secrets/{name}", tag="secrets", body=VALUE, status=204,
              params={"name": NAME_PARAM},
              summary="Set a secret (write-only: it can never be read back)")
    async def put(self, call, name):
        await self._secrets.set(name, call.body["value"])
        return Reply(204)

    @endpoint("DELETE", "/api/secrets/{name}", tag="secrets", status=204,
              params={"name": NAME_PARAM}, errors=(404,), summary="Remove a secret")
    async def delete(self, call, name):
        if not await self._secrets.delete(name):
            raise not_found("secret")
        return Reply(204)
