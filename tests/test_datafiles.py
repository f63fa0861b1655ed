"""
Bad files in the data directory, with the real daemon: a clear error,
nothing lost (the user's file is never overwritten), and DNS served
whenever the daemon can run at all (docs/STORAGE.md, "Bad files").
"""

import json
import os
import shutil
import tempfile
import unittest

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import create_token, login, setup_admin
from tests.cluster.e2e import wait_until
from tests.dns.clients import addresses, query
from tests.support.daemon import Daemon, run_sentinel
from tests.support.ports import free_port
from tests.support.upstream import Upstream


def _scratch(testcase):
    path = tempfile.mkdtemp(prefix="sentinel-files-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class Files(SynchronousTestCase):
    def setUp(self):
        self.up = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})

    def daemon(self, data_dir=None):
        return Daemon(self, data_dir=data_dir, upstreams=[self.up.spec])

    def assertServesDns(self, daemon):
        self.assertEqual(addresses(query(daemon.dns_port, "www.example.test")),
                         ["198.18.0.10"])

    def start_fails(self, data_dir):
        """(one stderr line, stderr) of a start that must fail."""
        result = run_sentinel(["--data-dir", data_dir, "--dns-port", str(free_port()),
                               "--dns-interface", "127.0.0.1", "--http-port", str(free_port()),
                               "--http-interface", "127.0.0.1", "--upstream", self.up.spec])
        err = result.stderr.decode("utf-8", "replace")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        self.assertEqual(result.returncode, 1, err)
        self.assertEqual(len(lines), 1, err)
        self.assertNotIn("Traceback", err)
        return lines[0]


class NodeKey(Files):
    def test_bad_key_file_stops_start_up_with_one_line_and_is_kept(self):
        data = _scratch(self)
        key = os.path.join(data, "node.key")
        for content, mode, says in ((b"x" * 31, 0o600, "not a 32-byte node key (31 bytes)"),
                                    (b"", 0o600, "(empty)"),
                                    (os.urandom(64), 0o600, "(64 bytes)"),
                                    (os.urandom(32), 0o644, "chmod 600")):
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            os.write(fd, content)
            os.close(fd)
            os.chmod(key, mode)
            line = self.start_fails(data)
            self.assertIn(key, line)
            self.assertIn(says, line)
            self.assertEqual(_read(key), content)  # never overwritten
            os.unlink(key)
        os.mkdir(key)
        self.assertIn("is not a regular file", self.start_fails(data))
        self.assertTrue(os.path.isdir(key))
        os.rmdir(key)
        os.symlink(os.path.join(data, "elsewhere", "node.key"), key)
        self.assertIn("symbolic link to a missing file", self.start_fails(data))
        self.assertTrue(os.path.islink(key))

    def test_lost_key_is_explained_and_restoring_it_fixes_it(self):
        node = self.daemon().start()
        token = create_token(node, setup_admin(node))
        auth = {"Authorization": "Bearer " + token}
        r = node.request("PUT", "/api/secrets/smtp.password", {"value": "hunter2"},
                         headers=auth)
        self.assertEqual(r.status, 204, r.body)
        key = os.path.join(node.data_dir, "node.key")
        original = _read(key)
        node.stop()

        os.unlink(key)  # lost (a volume mounted without it, a careless cleanup)
        node.start()
        self.assertNotEqual(_read(key), original)
        wait_until(lambda: "nodeKey" in node.get("/api/health").json().get("problems", {}),
                   10, what="the key problem in /api/health")
        health = node.get("/api/health")
        self.assertEqual(health.status, 200)  # DNS and the store work
        problem = health.json()["problems"]["nodeKey"]
        self.assertIn(f"the node key {key} cannot decrypt 1 stored value(s) "
                      f"(secret smtp.password)", problem)
        self.assertIn("Restore the original node.key", problem)
        self.assertServesDns(node)
        log = node.log()
        self.assertIn(f"created a new node key {key}", log)
        self.assertEqual(log.count("cannot decrypt"), 1)  # one line, not one per check
        self.assertNotIn("Traceback", log)

        # Set again under the new key: the problem is gone at once.
        r = node.request("PUT", "/api/secrets/smtp.password", {"value": "hunter2"},
                         headers=auth)
        self.assertEqual(r.status, 204, r.body)
        wait_until(lambda: "problems" not in node.get("/api/health").json(), 10,
                   what="the problem to clear")
        self.assertIn(f"the node key {key} decrypts every stored value again", node.log())
        node.stop()

        # Or the original key restored (the secret was set again under the new
        # one: that one is the unreadable value now, and is named).
        with open(key, "wb") as f:
            f.write(original)
        node.start()
        wait_until(lambda: node.log().count("cannot decrypt") == 2, 10, what="the check")
        node.stop()
        os.unlink(os.path.join(node.data_dir, "sentinel.db"))  # a fresh database
        node.start()
        wait_until(lambda: f"the node key {key} decrypts the 0 sealed value(s)" in node.log(),
                   10, what="the check on a fresh database")
        self.assertNotIn("problems", node.get("/api/health").json())


class Database(Files):
    """A database the daemon cannot open: DNS keeps answering (unfiltered), the
    API says why, the file is left as it is, and fixing it needs no restart."""

    def start_degraded(self, node):
        node.start(wait=False)
        wait_until(lambda: self._health(node) is not None
                   and "store" in self._health(node).get("problems", {}), 20,
                   what="the store problem in /api/health")
        health = node.get("/api/health")
        self.assertEqual(health.status, 503)
        self.assertEqual(health.json()["store"], "unavailable")
        self.assertServesDns(node)
        r = node.get("/api/auth/status")  # the UI's first call
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.json()["error"], "STORE_UNAVAILABLE")
        return health.json()["problems"]["store"]

    def _health(self, node):
        try:
            return node.get("/api/health", timeout=2).json()
        except OSError:
            return None

    def used_database(self):
        """A data directory with a real database and a rule in it."""
        node = self.daemon(_scratch(self)).start()
        auth = {"Authorization": "Bearer " + create_token(node, setup_admin(node))}
        r = node.post("/api/rules", {"pattern": "blocked.example.test", "action": "block"},
                      headers=auth)
        self.assertEqual(r.status, 201, r.body)
        node.stop()
        return node.data_dir

    def assertOneClearLine(self, node, text):
        log = node.log()
        self.assertIn(text, log)
        self.assertIn("DNS answers without filtering meanwhile; retrying in", log)
        self.assertNotIn("Traceback", log)

    def test_garbage_file_is_left_alone_and_replacing_it_recovers(self):
        data = _scratch(self)
        db = os.path.join(data, "sentinel.db")
        garbage = os.urandom(20000)
        with open(db, "wb") as f:
            f.write(garbage)
        node = self.daemon(data)
        problem = self.start_degraded(node)
        self.assertIn(f"{db} is not a SQLite database (it was left as it is)", problem)
        self.assertOneClearLine(node, problem)
        self.assertEqual(_read(db), garbage)
        os.rename(db, db + ".broken")  # the user moves it away: a new one is made
        wait_until(lambda: node.get("/api/health").status == 200, 40, what="recovery")
        self.assertIn(f"the store {db} is open now", node.log())
        self.assertEqual(_read(db + ".broken"), garbage)

    def test_truncated_database(self):
        data = self.used_database()
        db = os.path.join(data, "sentinel.db")
        os.truncate(db, os.path.getsize(db) // 2)
        before = _read(db)
        node = self.daemon(data)
        problem = self.start_degraded(node)
        self.assertIn(f"{db} is damaged (database disk image is malformed; it was left as "
                      f"it is): restore it from a backup", problem)
        self.assertOneClearLine(node, problem)
        self.assertEqual(_read(db), before)

    def test_newer_schema_is_refused_not_migrated(self):
        import sqlite3

        data = self.used_database()
        db = os.path.join(data, "sentinel.db")
        conn = sqlite3.connect(db)
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', 'x')")
        conn.commit()
        conn.close()
        before = _read(db)
        node = self.daemon(data)
        problem = self.start_degraded(node)
        self.assertIn(f"{db}: the database schema (version 999) is newer than this Sentinel",
                      problem)
        self.assertIn("run that version, or restore a backup made with this one", problem)
        self.assertOneClearLine(node, problem)
        node.stop()
        self.assertEqual(_read(db), before)

    def test_read_only_database_then_made_writable(self):
        import subprocess

        data = self.used_database()
        db = os.path.join(data, "sentinel.db")
        # chmod does not stop root (the test may run as root): the immutable
        # attribute stops everyone.
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i", db], capture_output=True).returncode:
            raise unittest.SkipTest("chattr +i is not available here")
        self.addCleanup(subprocess.run, ["chattr", "-i", db], capture_output=True)
        before = _read(db)
        node = self.daemon(data)
        problem = self.start_degraded(node)
        self.assertIn(f"{db} cannot be opened for writing (", problem)
        self.assertIn("must be writable by the user Sentinel runs as", problem)
        self.assertOneClearLine(node, problem)
        self.assertEqual(_read(db), before)
        subprocess.run(["chattr", "-i", db], check=True)
        wait_until(lambda: node.get("/api/health").status == 200, 40, what="recovery")
        rules = node.get("/api/rules", headers={"Cookie": login(node)}).json()
        self.assertIn("blocked.example.test", json.dumps(rules))  # nothing lost

    def test_failing_disk_at_run_time(self):
        """Writes failing under a running daemon (disk full, I/O errors; here the
        files made immutable): 503 with the reason, one log line, DNS answers, and
        it works again once the disk does."""
        import subprocess

        node = self.daemon().start()
        auth = {"Authorization": "Bearer " + create_token(node, setup_admin(node))}
        files = [os.path.join(node.data_dir, "sentinel.db" + s) for s in ("", "-wal")]
        if shutil.which("chattr") is None or subprocess.run(
                ["chattr", "+i"] + files, capture_output=True).returncode:
            raise unittest.SkipTest("chattr +i is not available here")
        self.addCleanup(subprocess.run, ["chattr", "-i"] + files, capture_output=True)
        rule = {"pattern": "blocked.example.test", "action": "block"}
        for _ in range(3):
            r = node.post("/api/rules", rule, headers=auth)
            self.assertEqual((r.status, r.json()["error"]), (503, "STORE_UNAVAILABLE"), r.body)
        problem = node.get("/api/health").json()["problems"]["store"]
        self.assertIn(f"the database {files[0]} failed: disk I/O error; changes and the query "
                      f"log cannot be saved until that is fixed", problem)
        self.assertServesDns(node)
        log = node.log()
        self.assertEqual(log.count(problem), 1, log)
        self.assertNotIn("Traceback", log)

        subprocess.run(["chattr", "-i"] + files, check=True)
        r = node.post("/api/rules", rule, headers=auth)
        self.assertEqual(r.status, 201, r.body)
        self.assertIn(f"the database {files[0]} works again", node.log())
        self.assertNotIn("problems", node.get("/api/health").json())

    def test_damaged_database_keeps_filtering_with_the_last_known_good_policy(self):
        """A family's filter must not silently turn off after a disk problem: the
        policy last in force is saved beside the database and enforced while the
        database cannot be opened (docs/STORAGE.md)."""
        from tests.filtering.e2ehelp import ListServer

        self.up = Upstream.start(self, {
            "www.example.test": {"A": ["198.18.0.10"]},
            "blocked.example.test": {"A": ["198.18.0.11"]},
            "ads.example.test": {"A": ["198.18.0.12"]},
        })
        lists = ListServer(self)
        lists.serve("/ads", "0.0.0.0 ads.example.test\n")
        node = self.daemon(_scratch(self)).start()
        auth = {"Authorization": "Bearer " + create_token(node, setup_admin(node))}
        for path, body in (("/api/rules", {"pattern": "blocked.example.test",
                                           "action": "block"}),
                           ("/api/blocklists", {"name": "ads", "url": lists.url("/ads")})):
            r = node.post(path, body, headers=auth)
            self.assertEqual(r.status, 201, r.body)
        r = node.post("/api/blocklists/1/refresh", headers=auth)
        self.assertEqual((r.status, r.json()["domains"]), (200, 1), r.body)

        def saved():
            status = node.get("/api/filtering/status", headers=auth).json()
            return status["last_known_good_saved_revision"] == status["revision"] > 0

        wait_until(saved, 20, what="the last-known-good policy saved")
        node.stop()
        db = os.path.join(node.data_dir, "sentinel.db")
        backup = os.path.join(_scratch(self), "backup")
        os.mkdir(backup)
        for name in ("", "-wal"):
            if os.path.exists(db + name):
                shutil.copy(db + name, backup)
                os.unlink(db + name)
        with open(db, "wb") as f:  # a damaged disk: the header is garbage now
            f.write(os.urandom(4096) + _read(os.path.join(backup, "sentinel.db"))[4096:])

        node = self.daemon(node.data_dir)
        problem = self.start_degraded(node)  # also: www.example.test is answered
        self.assertIn("is not a SQLite database", problem)
        wait_until(lambda: "policy" in self._health(node).get("problems", {}), 20,
                   what="the policy in /api/health")
        health = node.get("/api/health")
        self.assertEqual((health.status, health.json()["store"]), (503, "unavailable"))
        self.assertIn("DNS filters with the last-known-good policy from ",
                      health.json()["problems"]["policy"])
        for name in ("blocked.example.test", "x.ads.example.test"):
            r = query(node.dns_port, name)
            self.assertEqual((dns.rcode.to_text(r.rcode()), addresses(r)), ("NXDOMAIN", []),
                             name)
        self.assertEqual(self.up.count("blocked.example.test"), 0)
        log = node.log()
        self.assertEqual(log.count("the store cannot be opened: DNS filters with the "
                                   "last-known-good policy from "), 1, log)
        self.assertNotIn("Traceback", log)

        # The backup is restored: the store's configuration is in force again.
        for name in os.listdir(backup):
            shutil.copy(os.path.join(backup, name), node.data_dir)
        # The store opens first (200), then the engine reads its configuration
        # and drops the last-known-good policy (its problem line goes).
        wait_until(lambda: node.get("/api/health").status == 200, 40, what="recovery")
        wait_until(lambda: "problems" not in node.get("/api/health").json(), 20,
                   what="the store's configuration in force")
        self.assertEqual(node.request("DELETE", "/api/rules/1", headers=auth).status, 204)
        self.assertEqual(addresses(query(node.dns_port, "blocked.example.test")),
                         ["198.18.0.11"])
        self.assertEqual(node.get("/api/filtering/status", headers=auth).json()["source"],
                         "store")

    def test_directory_instead_of_a_file(self):
        data = _scratch(self)
        db = os.path.join(data, "sentinel.db")
        os.mkdir(db)
        node = self.daemon(data)
        problem = self.start_degraded(node)
        self.assertIn(f"{db} cannot be opened for writing (unable to open database file)",
                      problem)
        self.assertTrue(os.path.isdir(db))


class StoreErrorLines(SynchronousTestCase):
    """The cases a real daemon cannot show here (we run as root; PostgreSQL)."""

    def test_read_only_database_and_postgres_password(self):
        import sqlite3

        from sentinel.startup import explain_store_error

        line = explain_store_error("sqlite:////data/sentinel.db", sqlite3.OperationalError(
            "attempt to write a readonly database"))
        self.assertIn("/data/sentinel.db cannot be opened for writing (attempt to write a "
                      "readonly database): it and its directory must be writable by the user "
                      "Sentinel runs as", line)
        line = explain_store_error("postgresql://sentinel:hunter2@db:5432/sentinel",
                                   OSError("connection refused"))
        self.assertEqual(line, "could not open the store postgresql://sentinel:***@db:5432/"
                               "sentinel (connection refused)")
