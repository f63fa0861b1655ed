"""
Admin accounts: ``user`` entities keyed by the lower-cased username, data
``{"username", "password" (scrypt hash), "role", "created_at",
"password_changed_at"}``.  Users are synced configuration, so the same
login works on every node of a cluster.
"""

import re

from sentinel.auth import sessions as sessions_mod

KIND = "user"
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class AlreadyConfigured(Exception):
    """An admin account exists already."""


class WrongPassword(Exception):
    pass


class UsernameError(ValueError):
    pass


def check_username(username):
    if not isinstance(username, str) or not USERNAME.match(username):
        raise UsernameError(
            "usernames are 1-64 characters: letters, digits, and . _ @ - "
            "(not first)"
        )
    return username


def key_of(username):
    return username.lower()


class Users:
    def __init__(self, store, hasher, clock):
        self._store = store
        self._hasher = hasher
        self._clock = clock

    async def configured(self):
        return bool(await self._store.list(KIND))

    async def get(self, username):
        if not isinstance(username, str) or not USERNAME.match(username):
            return None
        entity = await self._store.get(KIND, key_of(username))
        return entity.data if entity else None

    async def setup(self, username, password):
        """Create the first admin; AlreadyConfigured if any user exists."""
        check_username(username)
        stored = await self._hasher.hash(password)
        now = self._clock.seconds()

        async def create(ctx):
            if await ctx.list(KIND):
                raise AlreadyConfigured()
            await ctx.put(KIND, key_of(username), {
                "username": username, "password": stored, "role": "admin",
                "created_at": now, "password_changed_at": now,
            })

        await self._store.transact(create)
        return username

    async def check(self, username, password):
        """The user's data if the password is right, else None."""
        user = await self.get(username)
        stored = user["password"] if user else None
        if not await self._hasher.verify(password, stored):
            return None
        # No rehash to newer parameters here: logins also run on followers,
        # where rewriting the (synced) account would fork it from the
        # leader's; the next password change stores the current parameters.
        return user

    async def change_password(self, username, current, new, keep_session=None):
        """
        Check ``current``, store ``new`` and end every session of the user
        except ``keep_session`` (the one making the change), in one
        transaction.  WrongPassword if ``current`` is wrong.
        """
        if await self.check(username, current) is None:
            raise WrongPassword()
        stored = await self._hasher.hash(new)
        now = self._clock.seconds()

        async def change(ctx):
            entity = await ctx.get(KIND, key_of(username))
            if entity is None:
                return
            await ctx.put(KIND, entity.key, dict(
                entity.data, password=stored, password_changed_at=now))
            await sessions_mod.revoke_user_sessions(ctx, username, keep_session)

        await self._store.transact(change)
