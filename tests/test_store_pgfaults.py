"""
PostgreSQL going away or misbehaving under a running store, with real
failures against the real server: backends killed (pg_terminate_backend),
a loopback proxy that refuses or black-holes the connections, a lock held
by another connection, a schema newer than the code.  The promise: store
calls fail with StoreUnavailable (HTTP 503), never hang and never report
a change that was not made; everything comes back by itself.
"""

import psycopg2
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sentinel.services import StoreService
from sentinel.store import Store, StoreUnavailable
from sentinel.store.database import PostgresDatabase, StoreTimeout
from sentinel.store.migrations import MigrationError
from tests.support import pg
from tests.support.tcpproxy import Proxy


async def until(predicate, timeout=10.0):
    """Wait (on the real reactor: the server answers in real time)."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


async def outcome(d, timeout=10.0):
    """d's result or failure, without raising."""
    box = []
    d.addBoth(box.append)
    await until(lambda: box, timeout)
    return box[0]


class PostgresFaultTests(TestCase):
    timeout = 30  # a hang fails the test instead of stalling the run
    if pg.skip_reason():
        skip = pg.skip_reason()

    def setUp(self):
        self.url, drop = pg.create_database()
        self.addCleanup(drop)
        self.name = self.url.rpartition("/")[2]
        self.admin = psycopg2.connect(pg.ADMIN_URL.rpartition("/")[0] + "/" + self.name)
        self.admin.autocommit = True
        self.addCleanup(self.admin.close)

    def through_proxy(self):
        dsn = psycopg2.extensions.parse_dsn(self.url)
        proxy = Proxy(dsn.get("host", "127.0.0.1"), int(dsn.get("port", 5432)))
        self.addCleanup(proxy.stop)
        return proxy, f"postgresql://{dsn['user']}@127.0.0.1:{proxy.listen_port}/{self.name}"

    async def open_store(self, url=None, clock=None, query_timeout=None):
        db = PostgresDatabase(url or self.url, reactor, clock=clock)
        if query_timeout is not None:
            db.query_timeout = query_timeout
        store = Store(db, reactor)
        self.addCleanup(store.stop)
        await store.start()
        return store

    def kill_backends(self, where=""):
        cur = self.admin.cursor()
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                    " AND pid <> pg_backend_pid()" + where, (self.name,))
        return cur.rowcount

    async def reconnect(self, store):
        """Kill the store's connections and wait until both are new."""
        old = dict(store.db._conns)
        self.kill_backends()
        await until(lambda: store.available and all(
            store.db._conns.get(w) not in (None, old[w]) for w in (True, False)))

    def test_a_write_whose_connection_is_killed_fails_and_later_writes_work(self):
        async def check():
            store = await self.open_store()
            await store.put("setting", "before", 1)

            async def change(ctx):
                await ctx.put("setting", "lost", 1)
                self.kill_backends()
                await ctx.put("setting", "lost2", 2)

            failure = await outcome(store.transact(change))
            # The caller is told the truth: not saved (was a txpostgres
            # RollbackFailed: HTTP 500, and the store still "available").
            self.assertTrue(failure.check(StoreUnavailable), failure)
            await until(lambda: store.available)  # reconnected by itself
            await store.put("setting", "after", 3)  # the write lock was released
            self.assertIsNone(await store.get("setting", "lost"))
            self.assertEqual((await store.get("setting", "after")).data, 3)
            self.assertEqual(await store.revision(), 2)

        return ensureDeferred(check())

    def test_idle_connections_killed_are_made_again_before_the_next_call(self):
        async def check():
            store = await self.open_store()
            # Noticed at once (it used to be an "Unhandled Error" traceback,
            # and the next call of each connection failed with a 503).
            await self.reconnect(store)
            await store.put("setting", "a", 1)
            self.assertEqual((await store.get("setting", "a")).data, 1)

        return ensureDeferred(check())

    def test_the_reader_dying_leaves_a_write_in_progress_alone(self):
        async def check():
            store = await self.open_store()
            db = store.db
            reader = db._conns[False]

            async def change(ctx):
                await ctx.put("setting", "a", 1)
                self.kill_backends(" AND state = 'idle'")  # the reader, not us
                await until(lambda: db._conns.get(False) is not reader)
                await ctx.put("setting", "b", 2)
                return "done"

            self.assertEqual(await outcome(store.transact(change)), "done")
            await until(lambda: store.available)
            self.assertEqual((await store.get("setting", "b")).data, 2)

        return ensureDeferred(check())

    def test_a_black_holed_connection_times_out_and_is_made_again(self):
        async def check():
            proxy, url = self.through_proxy()
            clock = Clock()
            store = await self.open_store(url, clock=clock)
            await store.put("setting", "a", 1)
            proxy.stall()  # no RST, no answer: only a timeout can tell
            write, read = store.put("setting", "b", 2), store.get("setting", "a")
            queued = store.put("setting", "c", 3)
            await deferLater(reactor, 0.1, lambda: None)
            self.assertNoResult(write)
            self.assertNoResult(read)
            clock.advance(store.db.query_timeout)
            self.failureResultOf(write, StoreUnavailable)
            self.failureResultOf(read, StoreUnavailable)
            # The write queued behind it is not left waiting either.
            self.assertTrue((await outcome(queued)).check(StoreUnavailable))
            await until(lambda: store.available)  # new connections pass
            await store.put("setting", "d", 4)
            self.assertEqual((await store.get("setting", "d")).data, 4)

        return ensureDeferred(check())

    def test_a_transaction_orphaned_by_a_black_hole_does_not_block_writes_for_ever(self):
        """The server ends the transaction of a client that went silent
        (idle_in_transaction_session_timeout), releasing its row locks."""
        async def check():
            proxy, url = self.through_proxy()
            clock = Clock()
            store = await self.open_store(url, clock=clock, query_timeout=1.0)

            async def change(ctx):
                await ctx.put("setting", "a", 1)  # holds the revision row lock
                proxy.stall()
                await ctx.put("setting", "b", 2)

            d = store.transact(change)
            await deferLater(reactor, 0.1, lambda: None)
            clock.advance(store.db.query_timeout)
            self.failureResultOf(d, StoreUnavailable)
            saved = None
            for _ in range(50):
                await until(lambda: store.available)
                result = await outcome(store.put("setting", "c", 3))
                if not isinstance(result, Failure):
                    saved = result
                    break
                result.trap(StoreUnavailable)  # the lock wait timed out: 503
                await deferLater(reactor, 0.1, lambda: None)
            self.assertIsNotNone(saved)
            # The reader went silent with the rest: it times out too.
            read = store.get("setting", "a")
            await deferLater(reactor, 0.1, lambda: None)
            clock.advance(store.db.query_timeout)
            self.failureResultOf(read, StoreUnavailable)
            await until(lambda: store.available)
            self.assertIsNone(await store.get("setting", "a"))
            self.assertEqual((await store.get("setting", "c")).data, 3)

        return ensureDeferred(check())

    def test_a_server_that_accepts_and_never_answers_fails_the_start(self):
        """libpq's connect_timeout does nothing for a non-blocking
        connection: without our own deadline start() waited for ever."""
        async def check():
            proxy, url = self.through_proxy()
            proxy.silence()
            clock = Clock()
            db = PostgresDatabase(url, reactor, clock=clock)
            self.addCleanup(db.stop)
            started = db.start()
            await deferLater(reactor, 0.1, lambda: None)
            self.assertNoResult(started)
            clock.advance(db.query_timeout)
            self.assertIn("did not answer (connecting)",
                          str(self.failureResultOf(started, StoreUnavailable).value))
            proxy.allow()
            await db.start()
            self.assertTrue(db.available)

        return ensureDeferred(check())

    def test_a_lock_held_elsewhere_is_a_503_not_a_hang(self):
        async def check():
            clock = Clock()  # only the server's statement_timeout (0.5 s) ends the wait
            store = await self.open_store(clock=clock, query_timeout=1.0)
            await store.put("setting", "a", 1)
            self.admin.autocommit = False
            self.admin.cursor().execute("SELECT * FROM revision FOR UPDATE")
            failure = await outcome(store.put("setting", "b", 2))
            self.assertTrue(failure.check(StoreUnavailable), failure)
            self.admin.rollback()
            self.assertTrue(store.available)  # the connection itself was fine
            await store.put("setting", "b", 2)

        return ensureDeferred(check())

    def test_unreachable_at_start_is_reported_then_opens_by_itself(self):
        """The store service hears of the failure (so DNS filters with the
        last-known-good policy and /api/health says why) and retries."""
        async def check():
            proxy, url = self.through_proxy()
            proxy.refuse()
            clock = Clock()
            store = Store(PostgresDatabase(url, reactor, clock=clock), reactor)
            service = StoreService(store, clock=clock, url=url)
            service.startService()
            self.addCleanup(service.stopService)
            problem = await outcome(service.when_failed())
            self.assertIn("could not open the store", problem)
            self.assertIn(f"127.0.0.1:{proxy.listen_port}", problem)
            proxy.allow()
            ready = service.when_ready()
            clock.advance(service.first_retry)
            await outcome(ready)
            self.assertTrue(store.available)
            await store.put("setting", "a", 1)

        return ensureDeferred(check())

    def test_a_newer_schema_is_refused_and_the_retries_go_on_while_unreachable(self):
        async def check():
            proxy, url = self.through_proxy()
            store = await self.open_store(url)
            await store.stop()
            self.admin.cursor().execute(
                "INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
            self.assertTrue((await outcome(store.start())).check(MigrationError))
            proxy.refuse()
            # Used to hang for ever after the failed start (the backend
            # stayed "stopped"): the store service waited for nothing.
            self.assertTrue((await outcome(store.start())).check(StoreUnavailable))
            proxy.allow()
            self.admin.cursor().execute("DELETE FROM schema_migrations WHERE version = 999")
            await store.start()
            await store.put("setting", "a", 1)

        return ensureDeferred(check())

    def test_health_says_why_while_the_connection_is_lost(self):
        async def check():
            proxy, url = self.through_proxy()
            clock = Clock()
            store = Store(PostgresDatabase(url, reactor, clock=clock), reactor)
            service = StoreService(store, clock=clock, url=url)
            service.startService()
            self.addCleanup(service.stopService)
            await outcome(service.when_ready())
            self.assertIsNone(service.current_problem())
            proxy.refuse()
            self.kill_backends()
            # It used to be None: the service had opened the store once.
            await until(lambda: service.current_problem() is not None)
            self.assertIn("the database connection was lost", service.current_problem())
            self.assertTrue((await outcome(store.put("setting", "a", 1))).check(StoreUnavailable))
            proxy.allow()
            clock.advance(store.db.first_backoff)
            await until(lambda: store.available)
            self.assertIsNone(service.current_problem())
            await store.put("setting", "a", 1)

        return ensureDeferred(check())

    def test_a_dropped_table_or_a_read_only_database_is_a_503_with_a_reason(self):
        """The server refusing the work is not a bug in Sentinel: 503 (it
        was a 500), /api/health says why, and it clears when fixed."""
        async def check():
            store = await self.open_store()
            await store.remember_nonce("n1", 10**10)
            self.admin.cursor().execute("ALTER TABLE nonces RENAME TO nonces_away")
            failure = await outcome(store.remember_nonce("n2", 10**10))
            self.assertTrue(failure.check(StoreUnavailable), failure)
            self.assertIn('relation "nonces" does not exist', store.db.problem)
            self.assertTrue(store.available)  # the connection was fine
            self.admin.cursor().execute("ALTER TABLE nonces_away RENAME TO nonces")
            await store.remember_nonce("n2", 10**10)
            self.assertIsNone(store.db.problem)

            cur = self.admin.cursor()
            cur.execute(f'ALTER DATABASE "{self.name}" SET default_transaction_read_only = on')
            self.addCleanup(lambda: self.admin.cursor().execute(
                f'ALTER DATABASE "{self.name}" RESET default_transaction_read_only'))
            await self.reconnect(store)  # a failover to a read-only server
            failure = await outcome(store.put("setting", "a", 1))
            self.assertTrue(failure.check(StoreUnavailable), failure)
            self.assertIn("read-only transaction", store.db.problem)
            self.assertEqual(await store.revision(), 0)  # reads still work
            cur.execute(f'ALTER DATABASE "{self.name}" RESET default_transaction_read_only')
            await self.reconnect(store)
            await store.put("setting", "a", 1)
            self.assertIsNone(store.db.problem)

        return ensureDeferred(check())

    def test_a_read_cut_by_the_statement_timeout_says_so(self):
        """A statistics read over a large query log can pass statement_timeout:
        it fails as such (the API explains it: QUERY_TIMEOUT), the connection kept."""
        async def check():
            store = await self.open_store(clock=Clock(), query_timeout=0.4)

            async def slow(tx):
                await tx.execute("SELECT pg_sleep(0.4)")  # twice statement_timeout

            failure = await outcome(store.db.run(slow, write=False))
            self.assertTrue(failure.check(StoreTimeout), failure)
            self.assertIn("cancelled a statement after 0.2s", str(failure.value))
            self.assertTrue(store.available)
            self.assertEqual(await store.revision(), 0)

        return ensureDeferred(check())

    def test_migrations_are_not_cut_short_by_the_timeouts(self):
        """A migration may build an index on a large query log for minutes:
        cutting it at the timeout would fail every start for ever."""
        async def check():
            clock = Clock()
            store = await self.open_store(clock=clock, query_timeout=0.4)

            async def slow(tx):
                await tx.execute("SELECT pg_sleep(0.4)")  # twice statement_timeout
                return "done"

            failure = await outcome(store.db.run(slow))
            self.assertTrue(failure.check(StoreUnavailable), failure)
            patient = store.db.run(slow, patient=True)
            await deferLater(reactor, 0.1, lambda: None)
            clock.advance(store.db.query_timeout)  # not cut here either
            self.assertEqual(await outcome(patient), "done")
            self.assertTrue(store.available)

        return ensureDeferred(check())

    def test_a_change_committed_while_its_answer_was_lost_is_still_enforced(self):
        """The server committed, the answer never came (503 to the user):
        observers (the policy DNS enforces) hear of it once the store
        answers again, not only at the next change."""
        async def check():
            proxy, url = self.through_proxy()
            clock = Clock()
            store = await self.open_store(url, clock=clock)
            heard = []
            store.subscribe(lambda revision, changed: heard.append(
                (revision, [(e.kind, e.key) for e in changed])))

            async def change(ctx):
                await ctx.put("rule", "1", {"pattern": "ads.example", "action": "block"})
                proxy.deafen()  # the COMMIT reaches the server, its answer does not

            d = store.transact(change)
            await until(lambda: self.committed(1))
            clock.advance(store.db.query_timeout)
            self.failureResultOf(d, StoreUnavailable)
            self.assertEqual(heard, [])
            # The reader went deaf with the writer: its calls (the store's
            # catch-up read among them) time out and it is made again.
            await until(lambda: store.available)  # the writer is made again
            reader = store.db._conns[False]
            read = store.get("rule", "1")
            await deferLater(reactor, 0.1, lambda: None)
            clock.advance(store.db.query_timeout)
            self.failureResultOf(read, StoreUnavailable)
            await until(lambda: store.available and store.db._conns.get(False) not in (
                None, reader))
            await until(lambda: heard)  # the catch-up is retried every second
            self.assertEqual(heard, [(1, [("rule", "1")])])

        return ensureDeferred(check())

    def committed(self, revision):
        cur = self.admin.cursor()
        cur.execute("SELECT value FROM revision WHERE id = 1")
        return cur.fetchone()[0] >= revision
