"""
The store contract, run against SQLite and PostgreSQL alike.
"""

import hashlib
import os
import shutil
import tempfile
import threading

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from sentinel.store import QueryLogFilter, Store, StoreUnavailable, blobhash, entities
from sentinel.store.database import PostgresDatabase, SqliteDatabase, _PostgresTx
from sentinel.store.entities import BLOB_PIECE
from sentinel.store.migrations import available_migrations
from tests.support import pg


class Boom(Exception):
    pass


class StoreContract:
    """Mixed into a TestCase with make_database() -> (database, reopen)."""

    async def open_store(self):
        db = self.make_database()
        store = Store(db, reactor)
        await store.start()
        self.addCleanup(store.stop)
        return store

    # -- migrations ------------------------------------------------------

    async def test_migrations_applied_once(self):
        store = await self.open_store()
        self.assertEqual(await store.revision(), 0)
        await store.put("setting", "a", 1)
        await store.stop()
        again = Store(self.make_database(reuse=True), reactor)
        await again.start()
        self.addCleanup(again.stop)
        # Restart: nothing re-applied, nothing lost.
        self.assertEqual((await again.get("setting", "a")).data, 1)
        rows = await again.db.run(
            lambda tx: tx.execute("SELECT version FROM schema_migrations ORDER BY version"),
            write=False,
        )
        versions = [v for v, _, _ in available_migrations(again.dialect)]
        self.assertEqual([r[0] for r in rows], versions)

    # -- configuration entities ---------------------------------------------

    async def test_put_get_list(self):
        store = await self.open_store()
        e = await store.put("setting", "dns", {"cache": 1000, "name": "héllo ✓"})
        self.assertEqual(e.revision, 1)
        got = await store.get("setting", "dns")
        self.assertEqual(got.data, {"cache": 1000, "name": "héllo ✓"})
        self.assertIsNone(await store.get("setting", "other"))
        await store.put("setting", "b", [1, 2])
        self.assertEqual([x.key for x in await store.list("setting")], ["b", "dns"])

    async def test_equal_put_is_not_a_change(self):
        store = await self.open_store()
        seen = []
        store.subscribe(lambda rev, changed: seen.append(rev))
        await store.put("setting", "x", {"a": 1, "b": 2})
        await store.put("setting", "x", {"b": 2, "a": 1})
        self.assertEqual(await store.revision(), 1)
        self.assertEqual(seen, [1])

    async def test_create_allocates_keys_never_reused(self):
        store = await self.open_store()
        a = await store.create("rule", {"p": "a"})
        b = await store.create("rule", {"p": "b"})
        self.assertEqual((a.key, b.key), ("1", "2"))
        await store.delete("rule", "2")
        c = await store.create("rule", {"p": "c"})
        self.assertEqual(c.key, "3")
        other = await store.create("client", {"n": 1})
        self.assertEqual(other.key, "1")

    async def test_reserved_keys_are_never_allocated(self):
        # Keys allocated elsewhere (a cluster leader) are reserved here, so
        # this node never hands them out if it becomes the leader.
        store = await self.open_store()
        seen = []
        store.subscribe(lambda rev, changed: seen.append((rev, changed)))
        await store.create("rule", {"p": "a"})
        reserved = await store.transact(lambda ctx: ctx.reserve("rule", 7))
        self.assertTrue(reserved)
        self.assertEqual(seen[-1][1][0].key, "7")
        self.assertTrue(seen[-1][1][0].deleted)
        self.assertIsNone(await store.get("rule", "7"))
        revision = await store.revision()
        # Lower or equal: already covered, not a change.
        for key in (7, 3):
            self.assertFalse(await store.transact(lambda ctx: ctx.reserve("rule", key)))
        self.assertEqual(await store.revision(), revision)
        self.assertEqual((await store.create("rule", {"p": "b"})).key, "8")
        self.assertEqual((await store.create("client", {"n": 1})).key, "1")
        # A live key is never turned into a tombstone.
        self.assertFalse(await store.transact(lambda ctx: ctx.reserve("rule", 8)))
        self.assertEqual((await store.get("rule", "8")).data, {"p": "b"})
        with self.assertRaises(ValueError):
            await store.transact(lambda ctx: ctx.reserve("rule", 0))

    async def test_key_marks_cover_tombstones_and_ignore_other_keys(self):
        store = await self.open_store()
        for _ in range(3):
            await store.create("blocklist", {"u": 1})
        await store.delete("blocklist", "3")
        await store.create("client", {"n": 1})
        await store.put("setting", "dns", {"x": 1})
        await store.put("user", "admin", {"x": 1})
        await store.put("session", "ab12", {"x": 1})
        await store.put("rule", "99999999999999999999", {"too": "long"})  # not a BIGINT
        marks = await store.read(lambda ctx: ctx.key_marks())
        self.assertEqual(marks, {"blocklist": 3, "client": 1})
        self.assertEqual(await store.read(lambda ctx: ctx.max_key("user")), 0)
        # create() is not confused by keys that are not integers (PostgreSQL
        # cannot CAST them).
        await store.put("client", "laptop", {"n": 2})
        self.assertEqual((await store.create("client", {"n": 3})).key, "2")

    async def test_concurrent_creates_get_distinct_keys(self):
        store = await self.open_store()
        made = await gatherResults([store.create("rule", {"i": i}) for i in range(20)])
        self.assertEqual(len({e.key for e in made}), 20)
        self.assertEqual(await store.revision(), 20)

    async def test_list_orders_integer_keys_numerically(self):
        store = await self.open_store()
        for i in range(12):
            await store.create("rule", {"i": i})
        self.assertEqual([e.key for e in await store.list("rule")],
                         [str(i) for i in range(1, 13)])

    async def test_delete_leaves_tombstone(self):
        store = await self.open_store()
        await store.put("client", "7", {"name": "tablet"})
        self.assertTrue(await store.delete("client", "7"))
        self.assertFalse(await store.delete("client", "7"))
        self.assertIsNone(await store.get("client", "7"))
        self.assertEqual(await store.list("client"), [])
        changes = await store.changes_since(1)
        self.assertEqual(changes.revision, 2)
        self.assertEqual([(e.kind, e.key, e.revision, e.deleted) for e in changes.entities],
                         [("client", "7", 2, True)])
        snap = await store.snapshot()
        self.assertEqual(snap.entities, ())

    async def test_changes_since(self):
        store = await self.open_store()
        await store.put("setting", "a", 1)
        await store.put("rule", "1", {"x": 1})
        await store.put("setting", "a", 2)
        changes = await store.changes_since(1)
        self.assertEqual([(e.kind, e.key, e.revision) for e in changes.entities],
                         [("rule", "1", 2), ("setting", "a", 3)])
        only = await store.changes_since(0, kinds={"rule"})
        self.assertEqual([e.key for e in only.entities], ["1"])
        self.assertEqual((await store.changes_since(3)).entities, ())

    async def test_transaction_is_all_or_nothing(self):
        store = await self.open_store()
        await store.put("setting", "keep", 1)
        seen = []
        store.subscribe(lambda rev, changed: seen.append(rev))

        async def half(ctx):
            await ctx.put("setting", "keep", 2)
            await ctx.create("rule", {"x": 1})
            raise Boom()

        await self.assertFailure(store.transact(half), Boom)
        self.assertEqual((await store.get("setting", "keep")).data, 1)
        self.assertEqual(await store.list("rule"), [])
        self.assertEqual(await store.revision(), 1)
        self.assertEqual(seen, [])

    async def test_one_revision_per_transaction(self):
        store = await self.open_store()
        heard = []
        store.subscribe(lambda rev, changed: heard.append((rev, [e.key for e in changed])))

        async def several(ctx):
            await ctx.put("setting", "a", 1)
            await ctx.put("setting", "b", 2)
            await ctx.delete("setting", "missing")
            return ctx.revision

        self.assertEqual(await store.transact(several), 1)
        self.assertEqual(heard, [(1, ["a", "b"])])
        self.assertEqual({e.revision for e in (await store.snapshot()).entities}, {1})

    async def test_blobs(self):
        store = await self.open_store()
        data = bytes(range(256)) * 1000
        sha = await store.put_blob(data)
        self.assertEqual(await store.get_blob(sha), data)
        self.assertEqual(await store.put_blob(data), sha)
        # A buffer is stored as its bytes (the list parser hands one over).
        view = memoryview(bytearray(b"other" + data))[5:]
        self.assertEqual(await store.put_blob(view), sha)
        other = await store.put_blob(memoryview(b"x" * 100))
        self.assertEqual(await store.get_blob(other), b"x" * 100)
        self.assertIsNone(await store.get_blob("0" * 64))
        self.assertEqual(await store.revision(), 0)

    async def test_large_blob_is_hashed_off_the_reactor_thread(self):
        # A 2M-name list blob is ~14 MB: hashing it held the reactor thread
        # (and so DNS) for 8-24 ms.
        store = await self.open_store()
        threads = []
        real = blobhash._hexdigest
        self.patch(blobhash, "_hexdigest",
                   lambda data: threads.append(threading.current_thread()) or real(data))
        data = os.urandom(blobhash.INLINE_BYTES + 1)
        sha = await store.put_blob(data)
        self.assertEqual(sha, hashlib.sha256(data).hexdigest())
        self.assertEqual(await store.get_blob(sha), data)
        self.assertEqual(len(threads), 1)
        self.assertIsNot(threads[0], threading.main_thread())

    async def test_large_blobs_round_trip(self):
        # Sizes around the pieces PostgreSQL moves them in (entities.BLOB_PIECE).
        store = await self.open_store()
        for size in (BLOB_PIECE, BLOB_PIECE + 1, 3 * BLOB_PIECE + 17):
            data = os.urandom(size)
            sha = await store.put_blob(data)
            self.assertEqual(sha, hashlib.sha256(data).hexdigest())
            self.assertEqual(await store.get_blob(sha), data)
            self.assertEqual(await store.put_blob(memoryview(data)), sha)  # stored once
            self.assertEqual(await store.get_blob(sha), data)
        # A transaction that stores two large blobs (a sync applying lists).
        one, two = os.urandom(2 * BLOB_PIECE + 1), os.urandom(2 * BLOB_PIECE + 2)

        async def both(ctx):
            return [await ctx.put_blob(one), await ctx.put_blob(two)]

        shas = await store.transact(both)
        self.assertEqual([await store.get_blob(sha) for sha in shas], [one, two])
        self.assertEqual(await store.revision(), 0)

    async def test_long_reads_are_whole_and_decoded_off_the_reactor(self):
        # 50,000 rules took the reactor thread ~200 ms to decode in one go.
        store = await self.open_store()
        n = entities.PAGE_ROWS * 2 + 5  # PostgreSQL reads them in pages

        async def fill(ctx):
            for i in range(n):
                await ctx.put("rule", str(i), {"i": i})
            await ctx.put("setting", "x", 1)

        await store.transact(fill)
        threads, real = set(), entities._entity
        self.patch(entities, "_entity",
                   lambda row: threads.add(threading.current_thread()) or real(row))
        snapshot = await store.snapshot()
        self.assertEqual([(e.kind, e.key) for e in snapshot.entities],
                         sorted([("rule", str(i)) for i in range(n)] + [("setting", "x")]))
        self.assertEqual([e.data["i"] for e in await store.list("rule")], list(range(n)))
        changes = await store.changes_since(0)
        self.assertEqual(len(changes.entities), n + 1)
        self.assertEqual(changes.revision, 1)
        self.assertNotIn(threading.main_thread(), threads)

    async def test_local_state_is_not_configuration(self):
        store = await self.open_store()
        await store.set_local("cluster_role", {"role": "leader"})
        self.assertEqual(await store.get_local("cluster_role"), {"role": "leader"})
        self.assertEqual(await store.get_local("nope", "d"), "d")
        await store.delete_local("cluster_role")
        self.assertIsNone(await store.get_local("cluster_role"))
        self.assertEqual(await store.revision(), 0)
        self.assertEqual((await store.snapshot()).entities, ())

    # -- records ---------------------------------------------------------------

    def _row(self, ts, client="192.168.1.5", qname="ads.example.com", decision="blocked"):
        return (ts, client, "tablet", qname, 1, decision, "rule:1", None, 3, 0.2)

    async def test_query_log(self):
        store = await self.open_store()
        await store.append_query_logs(
            [self._row(100.0), self._row(101.0, decision="forwarded", qname="Example.ORG"),
             self._row(102.0, client="10.0.0.9")])
        newest = await store.query_logs(QueryLogFilter())
        self.assertEqual([r["ts"] for r in newest], [102.0, 101.0, 100.0])
        self.assertEqual(newest[0]["client_ip"], "10.0.0.9")
        by_decision = await store.query_logs(QueryLogFilter(decision="forwarded"))
        self.assertEqual([r["qname"] for r in by_decision], ["Example.ORG"])
        by_domain = await store.query_logs(QueryLogFilter(domain="ADS.EXAMPLE"))
        self.assertEqual(len(by_domain), 2)
        by_client = await store.query_logs(QueryLogFilter(client="10.0.0.9"))
        self.assertEqual(len(by_client), 1)
        page = await store.query_logs(QueryLogFilter(limit=1, before_id=newest[0]["id"]))
        self.assertEqual([r["ts"] for r in page], [101.0])
        ranged = await store.query_logs(QueryLogFilter(since=100.5, until=102.0))
        self.assertEqual([r["ts"] for r in ranged], [101.0])

    async def test_query_log_large_batch(self):
        store = await self.open_store()
        rows = [self._row(float(t), qname=f"n{t}.example") for t in range(1203)]
        await store.append_query_logs(rows)
        self.assertEqual(await store.count_query_logs(), 1203)
        newest = await store.query_logs(QueryLogFilter(limit=2))
        self.assertEqual([r["qname"] for r in newest], ["n1202.example", "n1201.example"])

    async def test_query_log_retention(self):
        store = await self.open_store()
        await store.append_query_logs([self._row(float(t)) for t in range(10)])
        await store.prune_query_logs(before_ts=3.0)
        self.assertEqual(await store.count_query_logs(), 7)
        await store.prune_query_logs(before_ts=0.0, max_rows=4)
        rows = await store.query_logs(QueryLogFilter())
        self.assertEqual([r["ts"] for r in rows], [9.0, 8.0, 7.0, 6.0])

    async def test_notifications(self):
        store = await self.open_store()
        a = await store.add_notification("warning", "blocklist", "download failed")
        b = await store.add_notification("info", "cluster", "became leader")
        self.assertEqual(await store.unread_notifications(), 2)
        feed = await store.list_notifications()
        self.assertEqual([n["id"] for n in feed], [b, a])
        self.assertFalse(feed[0]["read"])
        self.assertEqual(await store.mark_notifications_read([a]), 1)
        self.assertEqual(await store.unread_notifications(), 1)
        self.assertEqual(await store.mark_notifications_read(), 1)
        self.assertEqual(await store.unread_notifications(), 0)
        self.assertEqual(await store.list_notifications(unread_only=True), [])

    async def test_nonces(self):
        store = await self.open_store()
        self.assertTrue(await store.remember_nonce("n1", 100.0))
        self.assertFalse(await store.remember_nonce("n1", 100.0))
        await store.prune_nonces(50.0)
        self.assertFalse(await store.remember_nonce("n1", 100.0))
        await store.prune_nonces(150.0)
        self.assertTrue(await store.remember_nonce("n1", 200.0))


class SqliteStoreTests(StoreContract, TestCase):
    def make_database(self, reuse=False):
        if not reuse or not hasattr(self, "_path"):
            directory = tempfile.mkdtemp(prefix="sentinel-store-")
            self.addCleanup(shutil.rmtree, directory, True)  # after the store stops
            self._path = os.path.join(directory, "sentinel.db")
        return SqliteDatabase(self._path, reactor)


class PostgresStoreTests(StoreContract, TestCase):
    if pg.skip_reason():
        skip = pg.skip_reason()

    def make_database(self, reuse=False):
        if not reuse or not hasattr(self, "_url"):
            self._url, drop = pg.create_database()
            self.addCleanup(drop)
        return PostgresDatabase(self._url, reactor)


class PostgresBlobPiecesTests(TestCase):
    """txpostgres quotes parameters and parses results on the reactor
    thread (~13 ms per MB of bytea): a 2M-name list blob (14 MB) in one
    statement held DNS for 50-140 ms.  No statement may carry, and no
    result may bring, more than one piece of a blob."""

    if pg.skip_reason():
        skip = pg.skip_reason()

    async def test_large_blob_travels_in_pieces(self):
        url, drop = pg.create_database()
        self.addCleanup(drop)
        store = Store(PostgresDatabase(url, reactor), reactor)
        await store.start()
        self.addCleanup(store.stop)
        sizes = []
        real = _PostgresTx.execute

        async def execute(tx, sql, params=()):
            sizes.extend(len(p) for p in params if isinstance(p, (bytes, memoryview)))
            rows = await real(tx, sql, params)
            sizes.extend(len(v) for row in rows for v in row if isinstance(v, bytes))
            return rows

        self.patch(_PostgresTx, "execute", execute)
        data = os.urandom(5 * BLOB_PIECE + 3)
        sha = await store.put_blob(data)
        self.assertEqual(await store.get_blob(sha), data)
        self.assertGreaterEqual(len(sizes), 12)  # 6 pieces each way
        self.assertLessEqual(max(sizes), BLOB_PIECE)


class PostgresLongReadTests(TestCase):
    """txpostgres parses results on the reactor thread: a long read (a
    backup or a full sync of 50,000 rules) is made of pages."""

    if pg.skip_reason():
        skip = pg.skip_reason()

    async def test_no_statement_returns_more_than_a_page(self):
        url, drop = pg.create_database()
        self.addCleanup(drop)
        store = Store(PostgresDatabase(url, reactor), reactor)
        await store.start()
        self.addCleanup(store.stop)

        async def fill(ctx):
            for i in range(entities.PAGE_ROWS * 3):
                await ctx.put("client", str(i), {"i": i})

        await store.transact(fill)
        counts, real = [], _PostgresTx.execute

        async def execute(tx, sql, params=()):
            rows = await real(tx, sql, params)
            counts.append(len(rows))
            return rows

        self.patch(_PostgresTx, "execute", execute)
        self.assertEqual(len((await store.snapshot()).entities), entities.PAGE_ROWS * 3)
        self.assertEqual(len(await store.list("client")), entities.PAGE_ROWS * 3)
        self.assertEqual(len((await store.changes_since(0)).entities), entities.PAGE_ROWS * 3)
        self.assertEqual(max(counts), entities.PAGE_ROWS)


class PostgresUnreachableTests(TestCase):
    """DNS must start even when PostgreSQL is down: start() fails at once
    (the store service reports it and retries), and a connection lost at
    run time is made again in the background, with backoff."""

    def test_an_error_without_a_message_does_not_stop_the_retries(self):
        """psycopg2 can fail with a message that is only a newline: the
        error names its type, and the next attempt still comes."""
        import psycopg2
        from twisted.internet.defer import fail, succeed
        from twisted.internet.task import Clock

        clock = Clock()
        db = PostgresDatabase("postgresql://root@127.0.0.1:1/nothing", reactor, clock=clock)
        attempts = [fail(psycopg2.OperationalError("\n")), None,
                    fail(psycopg2.OperationalError("\n")), None]

        def connect_all(generation):
            result = attempts.pop(0)
            if result is None:
                db._conns.setdefault(True, object())
                db._conns.setdefault(False, object())
                result = succeed(None)
            return result

        db._connect_all = connect_all
        self.addCleanup(db.stop)
        failure = self.failureResultOf(db.start(), StoreUnavailable)
        self.assertIn("OperationalError", str(failure.value))
        self.successResultOf(db.start())
        self.assertTrue(db.available)
        db._lost(True, db._conns.get(True), "gone")  # nothing there: ignored
        db._conns[True] = object()
        db._lost(True, db._conns[True], "server closed the connection\n")
        self.assertFalse(db.available)  # the first attempt failed
        self.assertIn("server closed the connection", db.problem)
        clock.advance(db.first_backoff)
        self.assertTrue(db.available)
        self.assertIsNone(db.problem)

    def test_unreachable_at_start_fails_at_once(self):
        from tests.support.ports import free_port

        db = PostgresDatabase(f"postgresql://root@127.0.0.1:{free_port()}/nothing", reactor)
        self.addCleanup(db.stop)
        return self.assertFailure(db.start(), StoreUnavailable)

    def test_reconnects_with_backoff_and_says_so(self):
        import psycopg2
        from twisted.internet.defer import fail, succeed
        from twisted.internet.task import Clock
        from twisted.logger import formatEvent, globalLogPublisher

        clock = Clock()
        db = PostgresDatabase("postgresql://root@127.0.0.1:1/nothing", reactor, clock=clock)
        messages = []

        def observe(event):
            if str(event.get("log_namespace", "")).startswith("sentinel.store.database"):
                messages.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.addCleanup(db.stop)
        db._conns.update({True: object(), False: object()})
        db._connect_all = lambda generation: succeed(None)
        self.successResultOf(db.start())
        db._connect_all = lambda generation: fail(psycopg2.OperationalError("refused"))
        db._conns[False] = object()
        db._lost(False, db._conns[False], "terminated")
        for expected in (0.5, 1.0, 2.0, 4.0):
            [call] = clock.getDelayedCalls()
            self.assertAlmostEqual(call.getTime() - clock.seconds(), expected)
            clock.advance(expected)
        self.assertTrue(any("retrying in 0.5s" in m for m in messages), messages)
        self.assertFalse(db.available)
        self.failureResultOf(db.run(lambda tx: None), StoreUnavailable)


async def _until(predicate, timeout=10.0):
    from twisted.internet.task import deferLater
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await deferLater(reactor, 0.01, lambda: None)


class StoreServiceTests(TestCase):
    """The daemon opens its store in the background and keeps trying."""

    def test_retries_until_the_store_opens(self):
        from twisted.internet.defer import fail, succeed
        from twisted.internet.task import Clock

        from sentinel.services import StoreService

        attempts = []

        class FlakyStore:
            available = False

            def start(self):
                attempts.append(clock.seconds())
                if len(attempts) < 3:
                    return fail(StoreUnavailable("disk on fire"))
                return succeed(None)

            def stop(self):
                return succeed(None)

        clock = Clock()
        service = StoreService(FlakyStore(), clock=clock)
        early, late = service.when_ready(), None
        failed = service.when_failed()  # what the last-known-good policy waits for
        self.assertNoResult(failed)
        service.startService()
        self.assertIn("disk on fire", self.successResultOf(failed))
        self.assertIn("disk on fire", self.successResultOf(service.when_failed()))
        clock.advance(1.0)
        self.assertNoResult(early)
        clock.advance(2.0)
        self.assertEqual(attempts, [0.0, 1.0, 3.0])
        self.successResultOf(early)
        late = service.when_ready()
        self.successResultOf(late)
        self.assertNoResult(service.when_failed())  # it is open: never
        self.flushLoggedErrors()

    def test_a_failure_inside_an_attempt_is_explained_as_opening_fails(self):
        """While an attempt to open is under way, /api/health does not show the
        backend's run-time words for a write that failed inside it (the
        read-only probe): it shows why opening failed once the attempt ends."""
        from twisted.internet.defer import Deferred, succeed
        from twisted.internet.task import Clock

        from sentinel.services import StoreService

        attempt = Deferred()

        class Db:
            problem = None

        class ReadOnlyStore:
            available = False
            db = Db()

            def start(self):
                return attempt

            def stop(self):
                return succeed(None)

        store = ReadOnlyStore()
        service = StoreService(store, clock=Clock(), url="sqlite:////data/sentinel.db")
        service.startService()
        store.db.problem = "the database /data/sentinel.db failed: attempt to write a readonly"
        self.assertIsNone(service.current_problem())  # the attempt has not ended
        attempt.errback(StoreUnavailable("attempt to write a readonly database"))
        self.assertIn("/data/sentinel.db cannot be opened for writing (",
                      service.current_problem())
        service.stopService()
        self.flushLoggedErrors()

    def test_operations_wait_for_migrations(self):
        directory = tempfile.mkdtemp(prefix="sentinel-store-")
        self.addCleanup(shutil.rmtree, directory, True)
        store = Store(SqliteDatabase(os.path.join(directory, "s.db"), reactor), reactor)
        self.assertFalse(store.available)
        self.failureResultOf(store.list("rule"), StoreUnavailable)
