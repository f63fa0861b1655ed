"""
API tokens for scripts (``Authorization: Bearer snt_<id>_<secret>``):
``api_token`` entities with integer keys, data ``{"name", "hash",
"created_at", "created_by"}``.  Only the SHA-256 of the secret is stored;
the token itself is shown once, when it is created.
"""

from sentinel.auth import tokens
from sentinel.api.base import Principal

KIND = "api_token"


class DuplicateName(Exception):
    pass


def public(entity):
    """What the API shows about a token (never the hash)."""
    d = entity.data
    return {"id": int(entity.key), "name": d["name"], "created_at": d["created_at"],
            "created_by": d["created_by"]}


class ApiTokens:
    def __init__(self, store, clock):
        self._store = store
        self._clock = clock

    async def create(self, name, username):
        """(public dict, token text); DuplicateName if the name is taken."""
        secret = tokens.new_secret()
        data = {"name": name, "hash": tokens.digest(secret),
                "created_at": self._clock.seconds(), "created_by": username}

        async def create(ctx):
            for entity in await ctx.list(KIND):
                if entity.data["name"].lower() == name.lower():
                    raise DuplicateName(name)
            return await ctx.create(KIND, data)

        entity = await self._store.transact(create)
        return public(entity), tokens.api_token(entity.key, secret)

    async def list(self):
        return [public(e) for e in await self._store.list(KIND)]

    async def revoke(self, token_id):
        return await self._store.delete(KIND, str(token_id))

    async def principal(self, text):
        parsed = tokens.parse_api_token(text)
        if parsed is None:
            return None
        token_id, secret = parsed
        entity = await self._store.get(KIND, token_id)
        if entity is None or not tokens.same_digest(secret, entity.data.get("hash")):
            return None
        return Principal(username=entity.data["created_by"], method="token",
                         token_id=int(token_id))
