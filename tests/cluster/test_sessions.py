"""
Login sessions in a cluster (see docs/CLUSTER.md, "Sessions"): sessions are
synced from the leader, but a follower also writes sessions itself — logins
on its own address, and the renewal of active sessions (about every 12 h).
Those local writes never break sync nor make revisions flap; a session
opened through the VIP survives a failover and the hand-back; a login on a
follower lasts at least until the next full resync.
"""

from twisted.internet.defer import ensureDeferred

from sentinel.auth.sessions import Sessions
from sentinel.cluster.status import SyncError
from tests.cluster.pair import SyncTestCase, _held

HOUR = 3600


class Refusing:
    """The leader URL reaches nobody (the VIP moved to the follower)."""

    def request(self, *a, **kw):
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        return fail(ConnectionRefusedError("Connection refused"))


class _Pair(SyncTestCase):
    timeout = 30
    async def setUp(self):
        await super().setUp()
        self.on_leader = Sessions(self.leader.store, self.clock)
        self.on_follower = Sessions(self.follower.store, self.clock)
        await self.join()
        await self.sync()

    async def marker(self):
        return (await self.follower.store.get_local("cluster.sync"))["revision"]

    async def idle_sync_changes_nothing(self):
        revision = await self.follower.store.revision()
        d = ensureDeferred(self.sync())
        await _held(self.leader)  # the leader holds the poll: nothing changed
        self.clock.advance(5)
        self.assertIsNone(await d)
        self.assertEqual(await self.follower.store.revision(), revision)


class SessionsInClusterTests(_Pair):
    async def test_login_on_follower_lasts_until_a_full_resync(self):
        token, _ = await self.on_follower.open("admin")  # POST /api/auth/login there
        local = await self.follower.store.revision()
        self.assertEqual(await self.marker(), await self.leader.store.revision())
        # Incremental syncs neither fail nor touch it, and the leader's view
        # of the follower (the revision it holds) ignores local writes.
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        applied = await self.sync()
        self.assertEqual(applied.mode, "changes")
        self.assertEqual(applied.counts, {"rule": {"put": 1, "deleted": 0}})
        self.assertEqual(await self.marker(), await self.leader.store.revision())
        self.assertEqual(await self.follower.store.revision(), local + 1)
        self.assertIsNotNone(await self.on_follower.principal(token))
        await self.idle_sync_changes_nothing()
        self.assertIsNone(self.follower.client.status.last_error)
        # A full resync makes the follower an exact copy: the local login goes.
        self.follower.client.force_next = True
        applied = await self.sync()
        self.assertEqual((applied.mode, applied.counts), ("full", {
            "session": {"put": 0, "deleted": 1}}))
        self.assertIsNone(await self.on_follower.principal(token))

    async def test_renewal_on_follower_is_local_and_never_flaps(self):
        token, _ = await self.on_leader.open("admin")
        await self.sync()
        self.clock.advance(13 * HOUR)  # less than half the idle time left
        self.assertIsNotNone(await self.on_follower.principal(token))  # renewed here
        renewed = (await self.follower.store.get("session", _key(token))).data
        self.assertGreater(renewed["expires_at"], self.clock.seconds() + 23 * HOUR)
        for _ in range(2):
            await self.idle_sync_changes_nothing()
        self.assertEqual((await self.follower.store.get("session", _key(token))).data, renewed)
        # The leader renews it too: its copy wins, once, and it is no change
        # the next time round.
        self.clock.advance(1)
        self.assertIsNotNone(await self.on_leader.principal(token))
        applied = await self.sync()
        self.assertEqual(applied.counts, {"session": {"put": 1, "deleted": 0}})
        await self.idle_sync_changes_nothing()
        self.assertIsNotNone(await self.on_follower.principal(token))

    async def test_session_opened_through_the_vip_survives_failover_and_hand_back(self):
        token, _ = await self.on_leader.open("admin")  # login through the VIP
        await self.sync()
        # Failover: the leader is gone, the follower owns the VIP.
        self.follower.leader_http = Refusing()
        self.follower.machine.set_override("leader")
        self.assertIsNotNone(await self.on_follower.principal(token))
        # Hours of use on the follower: renewed there, locally.
        self.clock.advance(13 * HOUR)
        self.assertIsNotNone(await self.on_follower.principal(token))
        during, _ = await self.on_follower.open("admin")  # a login during the failover
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        self.assertEqual(e.code, "LEADER_UNREACHABLE")  # not because of the local writes
        # Hand-back: the leader owns the VIP again; the follower follows.
        self.follower.leader_http = self.to_leader
        self.follower.machine.set_override("follower")
        await self.leader.store.create("rule", {"pattern": "meanwhile.example"})
        applied = await self.sync()
        self.assertEqual(applied.mode, "changes")
        await self.idle_sync_changes_nothing()
        # The session from before the failover works on both nodes (it had
        # 11 h left on the leader, which renews it now).
        self.assertIsNotNone(await self.on_leader.principal(token))
        self.assertIsNotNone(await self.on_follower.principal(token))
        # A login made on the follower during the failover exists there only
        # (documented: log in again through the VIP).
        self.assertIsNone(await self.on_leader.principal(during))
        self.assertIsNotNone(await self.on_follower.principal(during))


class PasswordChangeTests(_Pair):
    """A password change on the leader ends every other session of the user
    — also those the leader never saw, opened on a follower."""

    async def setUp(self):
        await super().setUp()
        await self.leader.store.put("user", "admin", {
            "username": "Admin", "password": "$scrypt$old", "role": "admin",
            "created_at": self.clock.seconds(), "password_changed_at": self.clock.seconds()})
        self.through_vip, _ = await self.on_leader.open("Admin")
        self.other_vip, _ = await self.on_leader.open("Admin")
        await self.sync()
        self.clock.advance(60)
        self.on_own_address, _ = await self.on_follower.open("Admin")
        self.someone_else, _ = await self.on_follower.open("viewer")
        self.clock.advance(60)

    async def change_password(self):
        """What Users.change_password does on the leader."""
        from sentinel.auth import tokens
        from sentinel.auth.sessions import revoke_user_sessions

        async def change(ctx):
            user = await ctx.get("user", "admin")
            await ctx.put("user", "admin", dict(user.data, password="$scrypt$new",
                                                password_changed_at=self.clock.seconds()))
            await revoke_user_sessions(ctx, "Admin", keep=tokens.digest(self.through_vip))

        await self.leader.store.transact(change)

    async def test_password_change_ends_the_followers_own_sessions(self):
        await self.change_password()
        self.clock.advance(60)
        after, _ = await self.on_follower.open("Admin")  # with the new password
        applied = await self.sync()
        self.assertEqual(applied.local_sessions_ended, 1)
        f = self.on_follower
        self.assertIsNone(await f.principal(self.on_own_address))  # ended
        self.assertIsNone(await f.principal(self.other_vip))  # ended by the leader
        self.assertIsNotNone(await f.principal(self.through_vip))  # kept by the leader
        self.assertIsNotNone(await f.principal(after))
        self.assertIsNotNone(await f.principal(self.someone_else))
        self.assertEqual(self.follower.client.status.last_apply["localSessionsEnded"], 1)
        await self.idle_sync_changes_nothing()

    async def test_deleted_account_ends_the_followers_own_sessions(self):
        await self.leader.store.delete("user", "admin")
        applied = await self.sync()
        self.assertEqual(applied.local_sessions_ended, 1)
        self.assertIsNone(await self.on_follower.principal(self.on_own_address))
        self.assertIsNotNone(await self.on_follower.principal(self.someone_else))


def _key(token):
    from sentinel.auth import tokens

    return tokens.digest(token)
