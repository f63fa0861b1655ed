"""
After the VIP moved, the follower's HTTP to the leader URL (the VIP) must
not use a connection kept from before the move: it leads to the node that
no longer has the VIP, which resets it or drops what it gets.  Found
running the guide's checklist (tests.ha.test_guide, step 5 after a
hand-back): the follower reported a reachable leader as unreachable, and
its sync hung until the poll's timeout.

- The leader check behind "Configure" (POST /api/cluster/configure-follower;
  "Save Leader URL", POST /api/cluster/leader-url, makes the same) uses a
  new connection every time.
- The sync poll starts again at once on a new connection when the role
  file changes (the VIP came or went) or a leader URL is saved.

Real daemons on loopback; the leader URL is a TCP forwarder standing in
for the VIP, whose L{VipStandIn.move} kills every connection opened so far
(reset at their next byte, or everything dropped) while new connections
reach the leader.
"""

import os
import socket
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import joincode
from tests.api.daemon_admin import create_token, setup_admin
from tests.cluster.e2e import make_daemon, wait_until, write_role
from tests.support.upstream import Upstream


class _Pair:
    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.dead = False

    def reset(self):
        for s in (self.client, self.upstream):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                s.close()
            except OSError:
                pass


class VipStandIn:
    """127.0.0.1:<port> forwarding to the leader's HTTP port."""

    def __init__(self, testcase, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.pairs = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        testcase.addCleanup(self.close)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            pair = _Pair(client, upstream)
            with self.lock:
                self.pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if pair.dead == "reset":  # the VIP is elsewhere: that node resets the connection
                pair.reset()
                return
            if pair.dead:  # ... or drops what it gets (the source is its own address)
                continue
            try:
                dst.sendall(data)
            except OSError:
                break
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def move(self, how="reset"):
        with self.lock:
            for pair in self.pairs:
                pair.dead = how

    def close(self):
        self.sock.close()
        with self.lock:
            for pair in self.pairs:
                pair.reset()


class LeaderCheckAfterVipMove(SynchronousTestCase):
    def setUp(self):
        up = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})
        self.leader = make_daemon(self, "sqlite", upstreams=[up.spec]).start()
        # Polls of 1 s: a poll that hangs is given up after 1 + 10 s.
        self.node = make_daemon(self, "sqlite", upstreams=[up.spec],
                                args=["--sync-freshness", "4"]).start()
        self.vip = VipStandIn(self, self.leader.http_port)
        self.auth = {"Authorization": "Bearer " + create_token(
            self.leader, setup_admin(self.leader))}
        self.own = {"Authorization": "Bearer " + create_token(self.node, setup_admin(self.node))}
        r = self.leader.post("/api/cluster/enable-leader", {"leaderUrl": self.vip.url},
                             headers=self.auth)
        self.assertEqual(r.status, 200, r.body)
        self.code = self.leader.get("/api/cluster/join-code", headers=self.auth).json()["joinCode"]

    def test_configure_follower_after_the_vip_moved(self):
        # A first attempt with a code from another cluster: refused by the
        # leader (a complete answer; the connection could be kept).
        other = joincode.make(self.vip.url, os.urandom(16).hex(), os.urandom(32),
                              int(time.time()) + 600)
        r = self.node.post("/api/cluster/configure-follower", {"joinCode": other},
                           headers=self.own)
        self.assertEqual((r.status, r.json()["error"]), (400, "JOIN_CODE_USED"), r.body)
        self.vip.move()
        # The right code: the check reaches the leader through the VIP as it is now.
        r = self.node.post("/api/cluster/configure-follower", {"joinCode": self.code},
                           headers=self.own)
        self.assertEqual((r.status, r.json().get("role")), (200, "follower"), r.body)

    def join(self):
        r = self.node.post("/api/cluster/configure-follower", {"joinCode": self.code},
                           headers=self.own)
        self.assertEqual(r.status, 200, r.body)
        wait_until(lambda: self.node.get("/api/cluster/ready").status == 200, 15,
                   what="the follower synced")

    def last_sync(self):
        r = self.node.get("/api/cluster/status", headers=self.auth)
        return r.json()["sync"]["lastSync"]

    def assert_syncs_again_soon(self, before):
        """Within 5 s, i.e. without waiting for the hung poll's 11 s timeout."""
        wait_until(lambda: self.last_sync() != before, 5, what="a sync on a new connection")

    def test_sync_resumes_at_once_when_the_vip_leaves_this_node(self):
        self.join()
        write_role(self.node, "leader")  # the VIP came here (failover)...
        wait_until(lambda: self.node.get("/api/cluster/ready").json()["role"] == "leader", 5,
                   what="failover")
        self.vip.move("drop")  # ...and went away again: kept connections lead nowhere
        before = self.last_sync()
        write_role(self.node, "follower")
        self.assert_syncs_again_soon(before)

    def test_sync_resumes_at_once_with_a_saved_leader_url(self):
        self.join()
        self.vip.move("drop")
        before = self.last_sync()
        r = self.node.post("/api/cluster/leader-url", {"leaderUrl": self.vip.url},
                           headers=self.auth)
        self.assertEqual((r.status, r.json()["reachable"]), (200, True), r.body)
        self.assert_syncs_again_soon(before)
