"""The readiness check keepalived runs every second (run as keepalived runs it)."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha import check
from tests.support.ports import free_port


class _Handler(BaseHTTPRequestHandler):
    answer = (200, {"ok": True, "role": "leader"})

    def do_GET(self):
        status, body = self.server.answer
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class CheckTests(SynchronousTestCase):
    def setUp(self):
        self.server = HTTPServer(("127.0.0.1", 0), _Handler)
        self.server.answer = (200, {"ok": True, "role": "leader"})
        thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/cluster/ready"
        self.peers = os.path.join(tempfile.mkdtemp(prefix="sentinel-check-"), "peers.json")

    def run_check(self, url=None, timeout=30):
        """Exactly the command line keepalived.conf contains."""
        cmd = [sys.executable, "-I", "-S", os.path.abspath(check.__file__),
               "--url", url or self.url, "--peers", self.peers, "--window", "5"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def write_peers(self, seen_ago=None, priority=110, alive_ago=None):
        peers = {} if seen_ago is None else {
            "198.18.0.3": {"lastSeen": time.time() - seen_ago, "priority": priority}}
        if alive_ago is not None:
            peers["198.18.0.3"]["lastAlive"] = time.time() - alive_ago
        with open(self.peers, "w") as f:
            json.dump({"peers": peers}, f)

    def test_ready(self):
        self.assertEqual(self.run_check().returncode, 0)

    def test_not_ready_while_another_node_advertises(self):
        self.server.answer = (503, {"ok": False, "role": "follower"})
        self.write_peers(seen_ago=1)
        p = self.run_check()
        self.assertEqual(p.returncode, 1)
        self.assertIn("not ready", p.stderr)

    def test_a_fifo_in_place_of_peers_json_does_not_hang_the_check(self):
        """Nobody writes into it: the check must not wait for a writer (it
        would be killed at keepalived's 2 s script timeout, at every run).
        Unknown peers hold the gate, as for a missing or broken file."""
        self.server.answer = (503, {"ok": False, "role": "follower"})
        os.mkfifo(self.peers)
        p = self.run_check(timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not ready", p.stderr)
        self.server.answer = (200, {"ok": True, "role": "follower"})
        self.assertEqual(self.run_check(timeout=10).returncode, 0)

    def test_not_ready_but_alone_takes_part(self):
        """A lone node with a stale sync still serves DNS rather than nobody."""
        self.server.answer = (503, {"ok": False, "role": "follower"})
        self.write_peers(seen_ago=None)
        self.assertEqual(self.run_check().returncode, 0)
        self.write_peers(seen_ago=30)  # last advert long ago
        self.assertEqual(self.run_check().returncode, 0)
        # The other node left (priority 0) 6 s after its last real advert.
        self.write_peers(seen_ago=1, priority=0, alive_ago=7)
        self.assertEqual(self.run_check().returncode, 0)

    def test_a_holder_that_just_left_still_holds_the_gate(self):
        """Priority 0 (crash, sidecar restart, hand-over) does not open the gate at once:
        a holder back within the window takes the VIP again."""
        self.server.answer = (503, {"ok": False, "role": "follower"})
        self.write_peers(seen_ago=0.5, priority=0, alive_ago=1.5)
        self.assertEqual(self.run_check().returncode, 1)

    def test_not_ready_and_peers_unknown_holds_the_gate(self):
        self.server.answer = (200, {"ok": False})
        self.assertEqual(self.run_check().returncode, 1)  # no peers file

    def test_daemon_down_always_fails(self):
        self.write_peers(seen_ago=None)
        port = free_port()
        self.assertEqual(
            self.run_check(f"http://127.0.0.1:{port}/api/cluster/ready").returncode, 1)

    def test_garbage_answers_are_not_ready(self):
        self.write_peers(seen_ago=1)
        for answer in ((200, b"not json"), (200, [1, 2]), (200, {"ok": "true"}),
                       (500, {"ok": True})):
            self.server.answer = answer
            self.assertEqual(self.run_check().returncode, 1, answer)

    def test_decide(self):
        self.assertEqual(check.decide(False, False, False), 1)
        self.assertEqual(check.decide(True, True, True), 0)
        self.assertEqual(check.decide(True, False, True), 1)
        self.assertEqual(check.decide(True, False, None), 1)
        self.assertEqual(check.decide(True, False, False), 0)
