"""
End to end: a daemon killed (SIGKILL, as by the OOM killer) while query-log
rows wait in its spool file; the next start stores every one of them,
exactly once, and drops a torn last frame with a log line.  DNS is served
meanwhile.
"""

import os
import shutil
import signal
import sqlite3
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from sentinel.store.spoolfile import HEADER_SIZE, RECORD, Scan
from tests.dns.clients import query
from tests.filtering.e2ehelp import wait_until
from tests.support.daemon import Daemon


def spooled_frames(path):
    """The whole records in the spool file (their frame numbers)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        return [number for number, _ in Scan(fd, os.fstat(fd).st_size)]
    finally:
        os.close(fd)


def children(pid):
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class KilledDaemonTests(SynchronousTestCase):
    def test_rows_in_the_spool_of_a_killed_daemon_are_stored_once_at_the_next_start(self):
        data_dir = tempfile.mkdtemp(prefix="sentinel-test-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        path = os.path.join(data_dir, "sentinel.db")
        first = Daemon(self, data_dir=data_dir, database="sqlite:///" + path).start()
        spool = os.path.join(first.data_dir, "querylog.spool")
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.addCleanup(db.close)

        def count(prefix):
            return db.execute("SELECT COUNT(*), COUNT(DISTINCT qname) FROM query_log "
                              "WHERE qname LIKE ?", (prefix + "%",)).fetchone()

        for i in range(20):  # stored while the daemon runs
            query(first.dns_port, f"stored{i}")
        wait_until(lambda: count("stored") == (20, 20), 30, what="the first rows")

        # The database is locked: the writer cannot commit, the rows wait in
        # the spool.  (A frame of the first rows can still be there too: it
        # is not stored twice.)
        db.execute("BEGIN IMMEDIATE")
        locked = True
        try:
            for i in range(30):
                query(first.dns_port, f"spooled{i}")
            wait_until(lambda: spooled_frames(spool)
                       and open(spool, "rb").read().count(b"spooled") == 30,
                       30, what="the rows in the spool")
            # Shown in the health answer, which stays 200: DNS is not affected.
            health = wait_until(lambda: (
                lambda r: r.status == 200 and r.json().get("problems", {}).get("queryLog"))(
                    first.get("/api/health")), 30, what="the query log in the health answer")
            self.assertIn("storing rows fails (database is locked)", health)
            writers = [pid for pid in children(first.process.pid) if b"logwriter" in
                       open(f"/proc/{pid}/cmdline", "rb").read()]
            self.assertTrue(writers)
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait(10)
            first.stop()
            for pid in writers:  # killed with the daemon, not left storing
                wait_until(lambda: gone(pid), 10, what=f"the writer {pid} to end")
            self.assertGreater(os.stat(spool).st_size, HEADER_SIZE)
            with open(spool, "ab") as f:  # a last frame the kill tore
                f.write(RECORD.pack(b"QLR1", 99, 4000, 0) + b"part")
            db.execute("ROLLBACK")
            locked = False
        finally:
            if locked:
                db.execute("ROLLBACK")
        self.assertEqual(count("spooled"), (0, 0))

        second = Daemon(self, data_dir=first.data_dir, database="sqlite:///" + path).start()
        query(second.dns_port, "again")  # DNS does not wait for the recovery
        wait_until(lambda: count("spooled") == (30, 30), 30, what="the recovered rows")
        wait_until(lambda: not [f for f in os.listdir(second.data_dir) if ".recover-" in f],
                   30, what="the spool left to be removed")
        self.assertEqual(count("stored"), (20, 20))
        # Logged once the child has said so (after removing the file).
        wait_until(lambda: "recovered 30 rows from" in second.log(), 30,
                   what="the recovery's log line")
        self.assertIn("its torn last frame (24 bytes) was dropped", second.log())
        query(second.dns_port, "after")
        wait_until(lambda: count("after") == (1, 1), 30, what="a new row")
        self.assertEqual(count("spooled"), (30, 30))
