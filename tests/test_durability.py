"""
A crash mid-transaction loses nothing that was committed: a child process
writes through the real store, reporting each committed write, and is
killed with SIGKILL while writing; the reopened store has every reported
write and no partial transaction.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sentinel.store import Store
from sentinel.store.database import SqliteDatabase
from tests.support.daemon import sentinel_env

WRITER = r"""
import sys
from twisted.internet import reactor, task
from twisted.internet.defer import ensureDeferred
from sentinel.store import Store
from sentinel.store.database import SqliteDatabase

async def main():
    store = Store(SqliteDatabase(sys.argv[1], reactor), reactor)
    await store.start()
    i = 0
    while True:
        i += 1
        async def pair(ctx, i=i):
            # Two writes that must stay together.
            await ctx.put("rule", str(i), {"n": i, "pad": "x" * 2000})
            await ctx.put("setting", "last", i)
        await store.transact(pair)
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()

task.react(lambda r: ensureDeferred(main()))
"""


class CrashTests(TestCase):
    timeout = 60

    async def test_sigkill_loses_nothing_committed(self):
        path = os.path.join(tempfile.mkdtemp(), "crash.db")
        child = subprocess.Popen([sys.executable, "-c", WRITER, path],
                                 stdout=subprocess.PIPE, env=sentinel_env())
        self.addCleanup(lambda: child.poll() is None and child.kill())
        committed = 0
        deadline = time.monotonic() + 30
        while committed < 200 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            committed = int(line)
        self.assertGreaterEqual(committed, 200, "writer did not make progress")
        child.send_signal(signal.SIGKILL)
        child.wait()
        for line in child.stdout:  # reported before the kill landed
            committed = int(line)

        store = Store(SqliteDatabase(path, reactor), reactor)
        await store.start()
        self.addCleanup(store.stop)
        rules = await store.list("rule")
        last = (await store.get("setting", "last")).data
        keys = sorted(int(e.key) for e in rules)
        # Everything reported as committed is there...
        self.assertGreaterEqual(last, committed)
        # ...and transactions are whole: every rule has its setting update.
        self.assertEqual(keys, list(range(1, last + 1)))
        ok = await store.db.run(lambda tx: tx.execute("PRAGMA integrity_check"), write=False)
        self.assertEqual(ok, [("ok",)])
