"""Shared helpers for the cluster unit tests: real stores, real state."""

import os
import tempfile

from twisted.internet import reactor

from sentinel.crypto import SecretBox
from sentinel.secrets import Secrets
from sentinel.store import Store
from sentinel.store.database import PostgresDatabase, SqliteDatabase
from tests.support import pg


async def open_store(testcase, dialect="sqlite", clock=reactor):
    if dialect == "sqlite":
        db = SqliteDatabase(os.path.join(tempfile.mkdtemp(), "sentinel.db"), reactor)
    else:
        url, drop = pg.create_database()
        testcase.addCleanup(drop)
        db = PostgresDatabase(url, reactor)
    store = Store(db, clock)
    await store.start()
    testcase.addCleanup(store.stop)
    return store


def new_box():
    return SecretBox(os.urandom(32))


class Node:
    """A store + node key + secrets, like one daemon's storage."""

    def __init__(self, store, box=None):
        self.store = store
        self.box = box or new_box()
        self.secrets = Secrets(store, self.box)


async def live(node):
    """{(kind, key): data} with secrets unsealed: what must converge."""
    snap = await node.store.snapshot()
    out = {}
    for e in snap.entities:
        data = e.data
        if e.kind == "secret":
            data = {"value": node.secrets.unseal(e.key, data)}
        out[(e.kind, e.key)] = data
    return out
