"""
A bad role file, with a real daemon (docs/CLUSTER.md, "The role file"):
garbage written at run time or found at start-up never flips the node's
role nor stops DNS; one log line names the file and the problem, and
/api/cluster/ready and /api/health say what is wrong until it is fixed.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import create_token, setup_admin
from tests.cluster.e2e import make_daemon, wait_until, write_role
from tests.dns.clients import addresses, query
from tests.support.upstream import Upstream

EXPECTED = "expected exactly 'leader' or 'follower'"


class BadRoleFile(SynchronousTestCase):
    def setUp(self):
        up = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})
        self.node = make_daemon(self, "sqlite", upstreams=[up.spec]).start()
        self.auth = {"Authorization": "Bearer " + create_token(
            self.node, setup_admin(self.node))}
        r = self.node.post("/api/cluster/enable-leader", {"leaderUrl": self.node.base_url},
                           headers=self.auth)
        self.assertEqual(r.status, 200, r.body)
        self.path = os.path.join(self.node.data_dir, "sentinel", "cluster_role")

    def effective(self):
        return self.node.get("/api/cluster/status", headers=self.auth).json()["effectiveRole"]

    def ready(self):
        return self.node.get("/api/cluster/ready").json()

    def assertServesDns(self):
        answer = query(self.node.dns_port, "www.example.test")
        self.assertEqual(addresses(answer), ["198.18.0.10"])

    def write_in_place(self, content):
        with open(self.path, "wb") as f:  # no rename: a partial write stays visible
            f.write(content)

    def test_garbage_at_run_time_keeps_the_role_and_is_explained(self):
        write_role(self.node, "follower\n")
        wait_until(lambda: self.effective() == "follower", 5, what="standby")

        for content, says in ((b"lead", "says 'lead'"), (b"", "is empty"),
                              (b"\x00\xffbinary", "is not text"),
                              (b"x" * 100000, "is larger than 256 bytes")):
            self.write_in_place(content)
            problem = f"role file {self.path} {says}"
            wait_until(lambda: problem in self.ready().get("roleFileError", ""), 10,
                       what=f"readiness to report {says!r}")
            ready = self.ready()
            self.assertEqual((ready["ok"], ready["role"]), (True, "follower"))  # kept
            self.assertEqual(self.effective(), "follower")
            self.assertIn(EXPECTED, ready["roleFileError"])
            health = self.node.get("/api/health")
            self.assertEqual(health.status, 200)  # DNS and the store are fine
            self.assertIn(problem, health.json()["problems"]["roleFile"])
            self.assertServesDns()
        log = self.node.log()
        self.assertIn(f"cluster: role file {self.path} says 'lead'; {EXPECTED}; keeping "
                      f"follower until it is fixed", log)
        self.assertNotIn("Traceback", log)

        # A directory where the file should be, then a FIFO (the notify FIFO by
        # mistake): reported, and neither blocks the daemon.
        os.unlink(self.path)
        wait_until(lambda: self.effective() == "leader", 5, what="no override")
        os.mkdir(self.path)
        wait_until(lambda: "is a directory" in self.ready().get("roleFileError", ""), 10,
                   what="directory reported")
        os.rmdir(self.path)
        os.mkfifo(self.path)
        wait_until(lambda: "not a regular file" in self.ready().get("roleFileError", ""), 10,
                   what="FIFO reported")
        self.assertEqual(self.effective(), "leader")
        self.assertServesDns()

        # Fixed (CRLF from a Windows editor is fine): the problem is gone.
        os.unlink(self.path)
        write_role(self.node, "follower\r\n")
        wait_until(lambda: self.effective() == "follower", 5, what="follower again")
        self.assertNotIn("roleFileError", self.ready())
        self.assertNotIn("problems", self.node.get("/api/health").json())
        self.assertIn(f"cluster: role file {self.path} is valid again", self.node.log())

    def test_garbage_at_start_up_means_the_configured_role(self):
        self.node.stop()
        self.write_in_place(b"MASTER\n")
        self.node.start()
        wait_until(lambda: self.ready()["role"] == "leader", 10, what="configured role")
        ready = self.ready()
        self.assertTrue(ready["ok"])
        self.assertEqual(ready["roleFileError"],
                         f"role file {self.path} says 'MASTER'; {EXPECTED}")
        self.assertServesDns()
        self.assertIn(f"keeping no override (the configured role) until it is fixed",
                      self.node.log())
