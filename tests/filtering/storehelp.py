"""A real SQLite store for filtering tests (fresh per test)."""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import succeed

from sentinel.store import Store
from sentinel.store.database import SqliteDatabase


async def open_store(testcase, postgres=False):
    """A fresh store: SQLite, or a new PostgreSQL database (tests/support/pg)."""
    if postgres:
        from tests.support import pg

        url, drop = pg.create_database()
        testcase.addCleanup(drop)
        store = Store.from_url(url, reactor)
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="sentinel-filtering-"), "test.db")
        store = Store(SqliteDatabase(path, reactor), reactor)
    await store.start()
    testcase.addCleanup(store.stop)
    return store


def inline(fn, *args):
    """Run 'in a thread' synchronously (unit tests)."""
    return succeed(fn(*args))
