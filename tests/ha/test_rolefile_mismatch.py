"""
The daemon and the keepalived sidecar configured with different role-file
paths (docs/CLUSTER.md, "The role file"): a real daemon publishes where it
reads its role in config.json; the sidecar (in-process, fake keepalived)
compares it with where it writes, and the daemon's /api/health and
/api/cluster/ha/status explain the mismatch until both agree.
"""

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha.keepalived import Keepalived
from sentinel.ha.layout import SidecarPaths
from sentinel.ha.sidecar import Sidecar
from tests.api.daemon_admin import create_token, setup_admin
from tests.cluster.e2e import make_daemon
from tests.ha.fakes import FakeFifo, FakeLauncher, FakeWatch

HA = {"enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120,
      "password": "s3cret"}


class RoleFileMismatch(SynchronousTestCase):
    def start(self, role_file=None):
        """role_file None: the default path, the one the sidecar uses too."""
        args = ["--role-file", role_file] if role_file else []
        self.node = make_daemon(self, "sqlite", args=args).start()
        self.auth = {"Authorization": "Bearer " + create_token(
            self.node, setup_admin(self.node))}
        r = self.node.request("PUT", "/api/cluster/ha/config", HA, headers=self.auth)
        self.assertEqual(r.status, 200, r.body)

    def run_sidecar(self):
        """The sidecar as compose runs it: CLUSTER_ROLE_FILE unset, the default path."""
        data = self.node.data_dir
        paths = SidecarPaths(data_dir=data,
                             role_file=os.path.join(data, "sentinel", "cluster_role"),
                             runtime_dir=os.path.join(data, "run"))
        clock = Clock()
        sidecar = Sidecar(clock, paths, Keepalived(clock, FakeLauncher(), "/x/keepalived",
                                                   paths.runtime_dir),
                          check_command=("/x/python3",),
                          run_command=lambda argv: defer.succeed(b"[]"),
                          make_watch=lambda host, port, cb: FakeWatch(host, port, cb),
                          make_fifo=lambda path, cb: FakeFifo(path, cb))
        sidecar.startService()
        self.addCleanup(sidecar.stopService)
        clock.advance(1)
        return paths

    def test_different_role_file_paths_are_explained(self):
        elsewhere = os.path.abspath(os.path.join(self.mktemp(), "cluster_role"))
        self.start(elsewhere)
        paths = self.run_sidecar()
        health = self.node.get("/api/health")
        self.assertEqual(health.status, 200)  # explained, not unhealthy: DNS is fine
        problem = health.json()["problems"]["haRoleFile"]
        self.assertIn(f"the daemon reads its role from {elsewhere} but this sidecar writes "
                      f"it to {paths.role_file}", problem)
        ha = self.node.get("/api/cluster/ha/status", headers=self.auth).json()
        self.assertEqual(ha["roleFile"]["mismatch"], problem)

    def test_the_same_role_file_is_no_problem(self):
        self.start()
        self.run_sidecar()
        self.assertNotIn("problems", self.node.get("/api/health").json())
        ha = self.node.get("/api/cluster/ha/status", headers=self.auth).json()
        self.assertIsNone(ha["roleFile"]["mismatch"])
