"""
Files the daemon writes into its data directory hold secrets (node key,
password hashes, sessions, sealed secrets): they must be readable by the
daemon's user only, also in a data directory that is not 0700 (Docker
volumes, a package-created /var/lib/sentinel) and under umask 022.
"""

import os
import shutil
import sqlite3
import stat
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from sentinel.store.database import private_database_files
from tests.support.daemon import Daemon

SECRET_FILES = ("node.key", "sentinel.db", "sentinel.db-wal", "sentinel.db-shm")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class DataDirTests(SynchronousTestCase):
    def setUp(self):
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)
        self.dir = tempfile.mkdtemp(prefix="sentinel-modes-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)

    def test_daemon_creates_its_files_private(self):
        daemon = Daemon(self, data_dir=self.dir).start()
        self.assertEqual(daemon.post("/api/auth/setup", {
            "username": "admin", "password": "correct horse"}).status, 201)
        daemon.stop()
        for name in SECRET_FILES:
            path = os.path.join(self.dir, name)
            if name.endswith(("-wal", "-shm")) and not os.path.exists(path):
                continue
            self.assertEqual(mode(path), 0o600, name)

    def test_existing_world_readable_database_is_narrowed(self):
        path = os.path.join(self.dir, "sentinel.db")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        os.chmod(path, 0o644)
        with open(path + "-wal", "ab"):
            pass
        os.chmod(path + "-wal", 0o644)
        self.addCleanup(conn.close)
        private_database_files(path)
        self.assertEqual(mode(path), 0o600)
        self.assertEqual(mode(path + "-wal"), 0o600)

    def test_new_database_file_is_created_private(self):
        path = os.path.join(self.dir, "new.db")
        private_database_files(path)
        self.assertEqual(mode(path), 0o600)
        sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchall()
        self.assertEqual(mode(path), 0o600)
