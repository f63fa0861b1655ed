"""
Readiness end to end, as the user guide (CLUSTER_HA.md, "1) Confirm role +
readiness endpoints" and "5) Readiness gating") describes it: real daemons
driven through the API, /api/cluster/ready answering exactly the guide's
bodies in each role, /api/health, and keepalived's check script (run as
keepalived runs it) deciding from those answers.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from unittest.mock import ANY

from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha import check
from tests.api.daemon_admin import create_token, setup_admin
from tests.cluster.e2e import make_daemon, wait_until, write_role
from tests.support.upstream import Upstream


class ReadinessFlow(SynchronousTestCase):
    def setUp(self):
        up = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})
        self.a = make_daemon(self, "sqlite", upstreams=[up.spec]).start()
        self.b = make_daemon(self, "sqlite", upstreams=[up.spec],
                             args=["--sync-freshness", "2"]).start()
        directory = tempfile.mkdtemp(prefix="sentinel-ready-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.peers = os.path.join(directory, "peers.json")

    def ready(self, daemon):
        r = daemon.get("/api/cluster/ready")
        return r.status, json.loads(r.body)

    def keepalived_check(self, daemon, other_node_advertising):
        """Exit status of keepalived's vrrp_script, exactly as it runs it."""
        peers = {"198.18.0.3": {"lastSeen": time.time() - 1, "priority": 110}} \
            if other_node_advertising else {}
        with open(self.peers, "w") as f:
            json.dump({"peers": peers}, f)
        cmd = [sys.executable, "-I", "-S", os.path.abspath(check.__file__),
               "--url", daemon.base_url + "/api/cluster/ready", "--peers", self.peers,
               "--window", "5"]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode

    def assertHealthy(self, daemon):
        r = daemon.get("/api/health")
        self.assertEqual((r.status, r.json()["checks"]["cluster"]), (200, True))

    def test_guide_readiness_bodies_and_the_keepalived_check(self):
        a, b = self.a, self.b
        # Standalone: exactly {"ok":true,"role":"standalone"}.
        for node in (a, b):
            self.assertEqual(self.ready(node), (200, {"ok": True, "role": "standalone"}))
            self.assertEqual(self.keepalived_check(node, True), 0)
            self.assertHealthy(node)

        # Leader and follower, set up through the API as the guide does.
        auth = {"Authorization": "Bearer " + create_token(a, setup_admin(a))}
        own = {"Authorization": "Bearer " + create_token(b, setup_admin(b))}
        self.assertEqual(a.post("/api/cluster/enable-leader", {"leaderUrl": a.base_url},
                                headers=auth).status, 200)
        code = a.get("/api/cluster/join-code", headers=auth).json()["joinCode"]
        r = b.post("/api/cluster/configure-follower", {"joinCode": code}, headers=own)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.ready(a), (200, {"ok": True, "role": "leader"}))
        wait_until(lambda: self.ready(b)[0] == 200, 10, what="follower synced")
        status, body = self.ready(b)
        self.assertEqual(sorted(body), ["lastSync", "ok", "role"])
        self.assertEqual((body["ok"], body["role"]), (True, "follower"))
        self.assertRegex(body["lastSync"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        for node in (a, b):
            self.assertEqual(self.keepalived_check(node, True), 0)
            self.assertHealthy(node)

        # The leader dies: after the freshness window the follower is not
        # ready — it stands aside while another node advertises, and takes
        # part when it is alone (stale DNS beats no DNS).
        a.kill()
        took = wait_until(lambda: self.ready(b)[0] == 503, 10, what="follower not ready")
        self.assertLess(took, 2 + 3)
        status, body = self.ready(b)
        self.assertEqual((body["ok"], body["role"], body["error"]), (False, "follower",
                                                                     "NOT_READY"))
        self.assertIn("no successful sync in the last 2 s", body["reason"])
        self.assertIsNotNone(body["lastSync"])
        self.assertEqual(self.keepalived_check(b, True), 1)
        self.assertEqual(self.keepalived_check(b, False), 0)
        self.assertHealthy(b)  # alive, and serving DNS: only not ready for the VIP

        # keepalived gives it the VIP: it reports leader (failover) and is
        # ready again, so it keeps the VIP even though its sync is stale.
        write_role(b, "leader")
        wait_until(lambda: self.ready(b) == (200, {"ok": True, "role": "leader"}), 5,
                   what="failover: ready as leader")
        self.assertEqual(self.keepalived_check(b, True), 0)
        status = b.get("/api/cluster/status", headers=auth).json()
        self.assertTrue(status["failover"])
        self.assertTrue(status["message"].startswith("failover active: leader unreachable"))
        system = b.get("/api/system/status", headers=auth).json()["components"]["cluster"]
        self.assertEqual((system["failover"], system["message"]), (True, status["message"]))

        # Hand-back: the leader is back and holds the VIP; the follower follows
        # and is ready as soon as it synced.
        a.start()
        write_role(b, "follower")
        wait_until(lambda: self.ready(b) == (200, {"ok": True, "role": "follower",
                                                    "lastSync": ANY}),
                   10, what="follower synced again")
        status = b.get("/api/cluster/status", headers=auth).json()
        self.assertEqual((status["failover"], status["message"]), (False, None))
