"""
A store call that is cancelled (an HTTP client went away, a timeout)
must not leave its transaction open: the next call on the same
connection would fail with "cannot start a transaction within a
transaction" until something happened to roll it back.
"""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.trial.unittest import TestCase

from sentinel.store.database import SqliteDatabase


class CancelledTransactionTests(TestCase):
    async def _db(self):
        path = os.path.join(tempfile.mkdtemp(prefix="sentinel-db-"), "t.db")
        db = SqliteDatabase(path, reactor)
        await db.start()
        self.addCleanup(db.stop)
        await db.run(lambda tx: tx.execute("CREATE TABLE t (x INTEGER)"))
        return db

    def test_cancelled_read_then_read(self):
        async def go():
            db = await self._db()
            d = db.run(lambda tx: tx.execute("SELECT COUNT(*) FROM t"), write=False)
            d.cancel()
            await self.assertFailure(d, CancelledError)
            rows = await db.run(lambda tx: tx.execute("SELECT 2"), write=False)
            self.assertEqual(rows, [(2,)])

        return ensureDeferred(go())

    def test_cancelled_write_is_committed_and_the_next_write_works(self):
        async def go():
            db = await self._db()
            d = db.run(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
            d.cancel()
            await self.assertFailure(d, CancelledError)
            await db.run(lambda tx: tx.execute("INSERT INTO t VALUES (2)"))
            rows = await db.run(lambda tx: tx.execute("SELECT x FROM t ORDER BY x"),
                                write=False)
            # the cancelled transaction ran to its end: nothing half-done
            self.assertEqual(rows, [(1,), (2,)])

        return ensureDeferred(go())
