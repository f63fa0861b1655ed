"""
Secrets (API keys, passwords the daemon needs in clear, ...): stored as
``secret`` entities sealed with the node key (AES-GCM, the secret's name as
associated data).  Values never leave this module in clear except to the
caller that asked for one by name; nothing here logs them.
"""

import re

from sentinel.crypto import DecryptError

KIND = "secret"
NAME = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


class SecretNameError(ValueError):
    pass


def _aad(name):
    return f"secret:{name}"


def check_name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise SecretNameError(
            "secret names are 1-64 characters: lowercase letters, digits, _ . : -"
        )
    return name


class Secrets:
    def __init__(self, store, box):
        self._store = store
        self._box = box

    def seal(self, name, value: str) -> dict:
        """Entity data for a secret (use inside a store transaction)."""
        return {"sealed": self._box.encrypt_text(value, _aad(check_name(name)))}

    def unseal(self, name, data) -> str:
        return self._box.decrypt_text(data["sealed"], _aad(name))

    async def set(self, name, value: str):
        await self._store.put(KIND, name, self.seal(name, value))

    async def get(self, name):
        entity = await self._store.get(KIND, check_name(name))
        if entity is None:
            return None
        try:
            return self.unseal(name, entity.data)
        except (DecryptError, KeyError, TypeError):
            return None  # sealed under another key: treat as unset

    async def delete(self, name):
        return await self._store.delete(KIND, check_name(name))

    async def names(self):
        return [e.key for e in await self._store.list(KIND)]

    async def readable(self):
        """{name: whether this node's key opens it} for every stored secret (False:
        sealed under another key -- node.key lost or replaced, see keycheck)."""
        out = {}
        for e in await self._store.list(KIND):
            try:
                self.unseal(e.key, e.data)
                out[e.key] = True
            except (DecryptError, KeyError, TypeError, ValueError):
                out[e.key] = False
        return out


async def sealed_values(ctx):
    """For L{sentinel.keycheck}: every stored secret, as (label, sealed, aad)."""
    return [(f"secret {e.key}", (e.data or {}).get("sealed"), _aad(e.key))
            for e in await ctx.list(KIND) if isinstance(e.data, dict)]
