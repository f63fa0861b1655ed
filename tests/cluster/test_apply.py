"""
Planning and applying sync batches: all or nothing, deletions converge,
IDs stay stable, equal data is no change, never back in time.  Batches are
built by the real leader code (SyncServer) from a real leader store.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.cluster.codec import Batch, WireEntity
from sentinel.cluster.plan import MARKER, ApplyError, Applier, check_order, plan
from sentinel.cluster.server import SyncServer
from sentinel.cluster.signing import new_secret
from sentinel.cluster.state import ClusterState
from tests.cluster.support import Node, live, open_store

H1, H2 = "11" * 16, "22" * 16


def E(kind, key, data, rev=1):
    return WireEntity(kind, key, rev, data)


class PlanTests(SynchronousTestCase):
    def test_full_puts_differences_and_deletes_absent(self):
        local = {("rule", "1"): {"p": "a"}, ("rule", "2"): {"p": "b"},
                 ("client", "1"): {"n": 1}}
        p = plan("full", local, [E("rule", "1", {"p": "a"}), E("rule", "2", {"p": "B"}),
                                 E("rule", "3", {"p": "c"})])
        self.assertEqual(p.puts, (("rule", "2", {"p": "B"}), ("rule", "3", {"p": "c"})))
        self.assertEqual(p.deletes, (("client", "1"),))
        self.assertEqual(p.counts(), {"rule": {"put": 2, "deleted": 0},
                                      "client": {"put": 0, "deleted": 1}})

    def test_changes_apply_tombstones_only_for_what_exists(self):
        local = {("rule", "1"): {"p": "a"}}
        p = plan("changes", local, [E("rule", "1", None), E("rule", "9", None)])
        self.assertEqual(p.deletes, (("rule", "1"),))
        self.assertEqual(p.puts, ())

    def test_changes_never_delete_by_absence(self):
        p = plan("changes", {("rule", "1"): {"p": "a"}}, [E("rule", "2", {"p": "b"})])
        self.assertEqual(p.deletes, ())

    def test_equal_is_compared_exactly(self):
        # 1 == True in Python; in configuration they differ.
        p = plan("full", {("setting", "x"): {"on": 1}}, [E("setting", "x", {"on": True})])
        self.assertEqual(len(p.puts), 1)
        p = plan("full", {("setting", "x"): {"a": 1, "b": 2}},
                 [E("setting", "x", {"b": 2, "a": 1})])
        self.assertTrue(p.empty)

    def test_node_local_settings_never_touched(self):
        local = {("setting", "cluster.role"): "x", ("setting", "ha"): 1,
                 ("setting", "listen_dns"): 2, ("setting", "dns"): 3,
                 ("setting", "hardening"): 4}
        p = plan("full", local, [E("setting", "cluster.mine", "y")])
        self.assertEqual(sorted(p.deletes), [("setting", "dns"), ("setting", "hardening")])
        self.assertEqual(p.puts, ())


class OrderTests(SynchronousTestCase):
    def batch(self, mode, history, revision, since=0):
        return Batch(mode, "aa" * 8, history, revision, since)

    def test_never_back_in_time(self):
        marker = {"history": H1, "revision": 10}
        e = self.assertRaises(ApplyError, check_order, marker, self.batch("full", H1, 9))
        self.assertEqual(e.code, "LEADER_BEHIND")
        check_order(marker, self.batch("full", H1, 9), force=True)
        check_order(marker, self.batch("full", H1, 10))
        check_order(marker, self.batch("full", H2, 3))  # another history: resync
        check_order(None, self.batch("full", H1, 0))

    def test_changes_must_start_here(self):
        marker = {"history": H1, "revision": 10}
        check_order(marker, self.batch("changes", H1, 12, since=10))
        for m, b in ((marker, self.batch("changes", H1, 12, since=9)),
                     (None, self.batch("changes", H1, 12, since=10)),
                     (marker, self.batch("changes", H2, 12, since=10))):
            self.assertEqual(self.assertRaises(ApplyError, check_order, m, b).code,
                             "OUT_OF_ORDER")


class ApplyTests(TestCase):
    dialect = "sqlite"

    async def setUp(self):
        self.leader = Node(await open_store(self, self.dialect))
        self.follower = Node(await open_store(self, "sqlite"))
        self.lstate = ClusterState(self.leader.store, self.leader.box, Clock())
        await self.lstate.load()
        await self.lstate.enable_leader("http://198.18.0.53:8080", new_secret)
        self.server = SyncServer(self.leader.store, self.lstate, self.leader.secrets, Clock())
        self.applier = Applier(self.follower.secrets)
        self.follower_revisions = []
        self.follower.store.subscribe(lambda rev, changed: self.follower_revisions.append(rev))

    async def marker(self):
        return await self.follower.store.get_local(MARKER)

    async def sync(self, force=False, fetched=None):
        m = await self.marker()
        since, history = (m["revision"], m["history"]) if m and not force else (0, "")
        batch = await self.server.batch(since, history)
        if batch.mode == "unchanged":
            return batch, None
        if fetched is None:
            fetched = {}
            for sha in batch.blobs:
                fetched[sha] = await self.leader.store.get_blob(sha)
        applied = await self.follower.store.transact(self.applier.apply, batch, fetched, force)
        return batch, applied

    async def assertConverged(self):
        self.assertEqual(await live(self.follower), await live(self.leader))

    async def populate(self):
        s = self.leader.store
        await s.put("setting", "dns", {"blockMode": "nxdomain", "cacheSize": 1000})
        await s.put("setting", "paused_until", 0)
        await self.leader.secrets.set("smtp_password", "hunter2")
        await s.put("user", "admin", {"hash": "$scrypt$abc"})
        await s.put("session", "s1", {"user": "admin", "expires": 99999})
        await s.create("client", {"name": "laptop", "ips": ["192.168.1.5"]})
        await s.create("rule", {"pattern": "ads.example", "action": "block"})
        await s.create("rule", {"pattern": "ok.example", "action": "allow"})
        sha = await s.put_blob(b"tracker.example\nads.example\n")
        await s.create("blocklist", {"url": "http://lists/ads.txt", "sha256": sha})
        await s.create("rewrite", {"domain": "nas.home", "answer": "192.168.1.10"})
        return sha

    async def test_first_sync_is_full_and_converges_with_stable_ids(self):
        sha = await self.populate()
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "full")
        await self.assertConverged()
        self.assertEqual([e.key for e in await self.follower.store.list("rule")], ["1", "2"])
        self.assertEqual(await self.follower.store.get_blob(sha),
                         b"tracker.example\nads.example\n")
        self.assertEqual(await self.marker(),
                         {"history": self.lstate.history, "revision": batch.revision,
                          "leader": self.lstate.node_id})
        self.assertEqual(self.follower_revisions, [1])  # one transaction

    async def test_secrets_resealed_under_follower_key(self):
        await self.leader.secrets.set("smtp_password", "hunter2")
        await self.sync()
        self.assertEqual(await self.follower.secrets.get("smtp_password"), "hunter2")
        stored = (await self.follower.store.get("secret", "smtp_password")).data
        self.assertNotIn("hunter2", str(stored))
        # Sealed under the follower's key, not the leader's.
        self.assertIsNone(await Node(self.follower.store, self.leader.box).secrets.get(
            "smtp_password"))

    async def test_incremental_changes_and_deletions_converge(self):
        await self.populate()
        await self.sync()
        s = self.leader.store
        await s.delete("rule", "1")
        await s.put("rule", "2", {"pattern": "ok.example", "action": "block"})
        await s.delete("setting", "paused_until")
        await self.leader.secrets.delete("smtp_password")
        await s.delete("session", "s1")
        await s.create("rule", {"pattern": "new.example", "action": "block"})
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "changes")
        await self.assertConverged()
        self.assertEqual(applied.counts["rule"], {"put": 2, "deleted": 1})
        self.assertEqual([e.key for e in await self.follower.store.list("rule")], ["2", "3"])

    async def test_unchanged_when_nothing_changed(self):
        await self.populate()
        await self.sync()
        before = list(self.follower_revisions)
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "unchanged")
        self.assertEqual(self.follower_revisions, before)

    async def test_equal_full_resync_changes_nothing(self):
        await self.populate()
        await self.sync()
        before = list(self.follower_revisions)
        revision = await self.follower.store.revision()
        batch, applied = await self.sync(force=True)
        self.assertEqual(batch.mode, "full")
        self.assertFalse(applied.changed)
        self.assertEqual(await self.follower.store.revision(), revision)
        self.assertEqual(self.follower_revisions, before)  # no observer: no policy rebuild

    async def test_change_of_leader_resyncs_in_full(self):
        await self.populate()
        await self.sync()
        # Another leader (new history) with partly different data.
        other = Node(await open_store(self, "sqlite"))
        ostate = ClusterState(other.store, other.box, Clock())
        await ostate.load()
        await ostate.enable_leader("http://198.18.0.53:8080", new_secret)
        await other.store.create("rule", {"pattern": "ads.example", "action": "block"})
        await other.store.put("setting", "dns", {"blockMode": "null", "cacheSize": 1000})
        self.server = SyncServer(other.store, ostate, other.secrets, Clock())
        self.leader = other
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "full")
        await self.assertConverged()  # deletions by absence, blob collected
        self.assertEqual(applied.blobs_removed, 1)
        self.assertEqual(applied.counts["rule"], {"put": 0, "deleted": 1})

    async def test_full_snapshot_reserves_ids_deleted_before_joining(self):
        s = self.leader.store
        for name in ("ads", "malware", "old"):
            await s.create("blocklist", {"name": name})
        await s.create("client", {"name": "kid", "blocklists": [3]})  # a stale reference
        await s.delete("blocklist", "3")
        for _ in range(5):
            await s.create("api_token", {"name": "t"})
        for key in ("1", "2", "3", "4", "5"):
            await s.delete("api_token", key)
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "full")
        self.assertEqual(batch.marks, {"blocklist": 3, "client": 1, "api_token": 5})
        self.assertEqual(applied.ids_reserved, 2)  # blocklist 3, api_token 5
        await self.assertConverged()
        # Promoted, this node would allocate after the leader's ids, never
        # one the kid's stale reference points at.
        self.assertEqual((await self.follower.store.create("blocklist", {})).key, "4")
        self.assertEqual((await self.follower.store.create("api_token", {})).key, "6")

    async def test_reserved_ids_are_no_change_on_the_next_full_resync(self):
        await self.leader.store.create("rule", {"p": "a"})
        await self.leader.store.create("rule", {"p": "b"})
        await self.leader.store.delete("rule", "2")
        await self.sync()
        before = list(self.follower_revisions)
        batch, applied = await self.sync(force=True)
        self.assertEqual(batch.marks, {"rule": 2})
        self.assertFalse(applied.changed)
        self.assertEqual(self.follower_revisions, before)

    async def test_changes_reserve_ids_this_node_never_saw(self):
        await self.populate()
        await self.sync()
        s = self.leader.store
        # Created and deleted between two polls: the follower only ever sees
        # the tombstone of an entity it never had.
        rule = await s.create("rule", {"pattern": "brief.example"})
        await s.delete("rule", rule.key)
        batch, applied = await self.sync()
        self.assertEqual(batch.mode, "changes")
        self.assertEqual(applied.counts, {})
        self.assertEqual(applied.ids_reserved, 1)
        self.assertEqual(int((await self.follower.store.create("rule", {})).key),
                         int(rule.key) + 1)

    async def test_missing_blob_applies_nothing(self):
        await self.populate()
        revision = await self.follower.store.revision()
        m = await self.marker()
        batch = await self.server.batch(0, "")
        e = await self.assertFailure(
            self.follower.store.transact(self.applier.apply, batch, {}), ApplyError)
        self.assertEqual(e.code, "BLOB_MISSING")
        self.assertEqual(await self.follower.store.revision(), revision)
        self.assertEqual(await self.marker(), m)
        self.assertEqual(await live(self.follower), {})

    async def test_failure_mid_apply_rolls_back_everything(self):
        await self.populate()
        batch = await self.server.batch(0, "")
        fetched = {sha: await self.leader.store.get_blob(sha) for sha in batch.blobs}

        class Boom(Exception):
            pass

        calls = []

        def still_valid():
            calls.append(1)
            raise Boom()

        await self.assertFailure(self.follower.store.transact(
            self.applier.apply, batch, fetched, False, still_valid), Boom)
        self.assertEqual(calls, [1])
        self.assertEqual(await live(self.follower), {})
        self.assertIsNone(await self.marker())
        self.assertEqual(await self.follower.store.read(lambda c: c.blob_shas()), set())

    async def test_membership_change_during_sync_aborts(self):
        await self.populate()
        batch = await self.server.batch(0, "")
        fetched = {sha: await self.leader.store.get_blob(sha) for sha in batch.blobs}
        e = await self.assertFailure(self.follower.store.transact(
            self.applier.apply, batch, fetched, False, lambda: False), ApplyError)
        self.assertEqual(e.code, "ABORTED")
        self.assertEqual(await live(self.follower), {})

    async def test_stale_snapshot_refused_unless_forced(self):
        await self.populate()
        await self.sync()
        await self.follower.store.transact(
            lambda ctx: ctx.set_local(MARKER, {"history": self.lstate.history,
                                               "revision": 10 ** 6}))
        await self.leader.store.create("rule", {"pattern": "x"})
        batch = await self.server.batch(10 ** 6, self.lstate.history)
        self.assertEqual(batch.mode, "full")  # the leader is behind this follower
        e = await self.assertFailure(
            self.follower.store.transact(self.applier.apply, batch, {}), ApplyError)
        self.assertEqual(e.code, "LEADER_BEHIND")
        await self.sync(force=True)
        await self.assertConverged()

    async def test_damaged_sync_position_means_full_resync(self):
        await self.populate()
        await self.sync()
        for damaged in (["x"], {"history": 5, "revision": "7"}, "garbage"):
            await self.follower.store.set_local(MARKER, damaged)
            batch = await self.server.batch(0, "")
            applied = await self.follower.store.transact(self.applier.apply, batch, {})
            self.assertFalse(applied.changed)
            self.assertEqual((await self.marker())["revision"], batch.revision)

    async def test_unreadable_leader_secret_not_sent(self):
        await self.leader.store.put("secret", "broken", {"sealed": "AAAA"})
        await self.leader.secrets.set("good", "v")
        batch = await self.server.batch(0, "")
        self.assertEqual([e.key for e in batch.entities], ["good"])
        self.flushLoggedErrors()


class ApplyFromPostgresTests(ApplyTests):
    """The same, with the leader on PostgreSQL (the follower on SQLite)."""

    dialect = "postgres"

    async def test_sync_converges_while_the_leaders_connections_flap(self):
        """The leader's PostgreSQL connections killed in the middle of its
        transactions (reading revisions for a sync, writing changes): each
        such call fails with StoreUnavailable (a 503 to the follower, which
        retries), never with anything else, and the follower converges."""
        import random

        import psycopg2
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        from sentinel.store import StoreUnavailable

        db = self.leader.store.db
        admin = psycopg2.connect(db._dsn)
        admin.autocommit = True
        self.addCleanup(admin.close)
        name = psycopg2.extensions.parse_dsn(db._dsn)["dbname"]
        statements, flaps = [0], [0]
        rng = random.Random(5)
        real_run = db.run

        def flaky_run(fn, *args, write=True, patient=False):
            async def wrapped(tx, *a):
                real_execute = tx.execute

                def execute(sql, params=()):
                    statements[0] += 1
                    if rng.random() < 0.08:
                        admin.cursor().execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                    return real_execute(sql, params)

                tx.execute = execute
                return await fn(tx, *a)

            return real_run(wrapped, *args, write=write, patient=patient)

        async def retried(call):
            for _ in range(200):
                try:
                    return await call()
                except StoreUnavailable:
                    flaps[0] += 1
                    await deferLater(reactor, 0.02, lambda: None)
            raise AssertionError("never worked")

        await self.populate()
        db.run = flaky_run
        s = self.leader.store
        for i in range(6):
            await retried(lambda: s.create("rule", {"pattern": f"r{i}.example",
                                                    "action": "block"}))
            await retried(lambda: s.delete("rule", "1"))
            await retried(lambda: s.put("setting", "dns", {"cacheSize": i}))
            await retried(self.sync)
        db.run = real_run
        self.assertGreater(flaps[0], 3)
        await self.assertConverged()
