"""
Login sessions: ``session`` entities keyed by the SHA-256 of the session
token (the cookie value is never stored), data ``{"username",
"created_at", "expires_at"}``.  Sessions are synced configuration, so a
session opened through the VIP survives a failover.

Expiry is enforced here, on the server: a session lasts ``idle`` seconds
after it was last renewed and never longer than ``absolute`` seconds after
login.  It is renewed (one store write) only when less than half of
``idle`` is left, so an active session costs a write every ``idle / 2``,
not one per request.  Logout and password changes delete the entity.
"""

from twisted.logger import Logger

from sentinel.auth import tokens
from sentinel.api.base import Principal

KIND = "session"
IDLE = 24 * 3600
ABSOLUTE = 7 * 24 * 3600

log = Logger()


async def revoke_user_sessions(ctx, username, keep=None):
    """Inside a transaction: delete every session of ``username`` except
    the one keyed ``keep``.  Returns how many were deleted."""
    count = 0
    for entity in await ctx.list(KIND):
        if entity.data.get("username", "").lower() == username.lower() \
                and entity.key != keep:
            await ctx.delete(KIND, entity.key)
            count += 1
    return count


class Sessions:
    def __init__(self, store, clock, idle=IDLE, absolute=ABSOLUTE):
        self._store = store
        self._clock = clock
        self.idle = idle
        self.absolute = absolute

    async def open(self, username):
        """(token, expires_at) of a new session for ``username``."""
        token = tokens.new_secret()
        now = self._clock.seconds()
        expires = now + self.idle
        await self._store.put(KIND, tokens.digest(token), {
            "username": username, "created_at": now, "expires_at": expires,
        })
        return token, expires

    async def principal(self, token):
        """The Principal of a live session, or None."""
        if not tokens.valid_session_token(token):
            return None
        key = tokens.digest(token)
        entity = await self._store.get(KIND, key)
        if entity is None:
            return None
        data, now = entity.data, self._clock.seconds()
        if now >= data.get("expires_at", 0):
            return None
        limit = data.get("created_at", 0) + self.absolute
        if data["expires_at"] - now < self.idle / 2 and data["expires_at"] < limit:
            data = dict(data, expires_at=min(now + self.idle, limit))
            try:
                await self._store.put(KIND, key, data)
            except Exception:
                log.failure("could not renew a session")
        return Principal(username=data["username"], method="session",
                         session_id=key, expires_at=data["expires_at"])

    async def close(self, token):
        """Delete the session of ``token`` (if any); True if there was one."""
        if not tokens.valid_session_token(token):
            return False
        return await self._store.delete(KIND, tokens.digest(token))

    async def prune(self):
        """Delete expired sessions (run periodically, on the leader)."""
        now = self._clock.seconds()

        async def prune(ctx):
            gone = 0
            for entity in await ctx.list(KIND):
                if now >= entity.data.get("expires_at", 0):
                    await ctx.delete(KIND, entity.key)
                    gone += 1
            return gone

        return await self._store.transact(prune)
