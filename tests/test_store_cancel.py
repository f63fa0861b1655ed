"""
A caller that gives up on a store call (Klein cancels a handler's Deferred
when the client disconnects; timeouts cancel too) must not break the
store: the transaction still ends (commit or rollback) and later calls
work.
"""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.trial.unittest import TestCase

from sentinel.store import Store
from sentinel.store.database import PostgresDatabase, SqliteDatabase
from tests.support import pg


class CancelContract:
    async def open_store(self):
        store = Store(self.make_database(), reactor)
        await store.start()
        self.addCleanup(store.stop)
        return store

    async def test_cancelled_reads_and_writes_leave_the_store_usable(self):
        store = await self.open_store()
        await store.put("setting", "a", 1)
        for _ in range(20):
            for call in (lambda: store.get("setting", "a"),
                         lambda: store.put("setting", "b", {"x": 1}),
                         lambda: store.list("setting")):
                d = call()
                d.cancel()
                try:
                    await d
                except CancelledError:
                    pass
        await store.put("setting", "c", 3)  # queued behind the cancelled writes
        self.assertEqual((await store.get("setting", "a")).data, 1)
        self.assertEqual([e.key for e in await store.list("setting")], ["a", "b", "c"])

    async def test_a_cancelled_write_is_all_or_nothing(self):
        store = await self.open_store()

        async def two(ctx):
            await ctx.put("setting", "x", 1)
            await ctx.put("setting", "y", 2)

        d = store.transact(two)
        d.cancel()
        try:
            await d
        except CancelledError:
            pass
        await store.put("setting", "z", 0)  # queued behind the cancelled write
        got = [await store.get("setting", k) for k in ("x", "y")]
        # The caller stopped waiting; the transaction still ran to its end.
        self.assertEqual([g.data for g in got], [1, 2])



class SqliteCancelTests(CancelContract, TestCase):
    def make_database(self):
        return SqliteDatabase(os.path.join(tempfile.mkdtemp(), "s.db"), reactor)


class PostgresCancelTests(CancelContract, TestCase):
    if pg.skip_reason():
        skip = pg.skip_reason()

    def make_database(self):
        url, drop = pg.create_database()
        self.addCleanup(drop)
        return PostgresDatabase(url, reactor)
