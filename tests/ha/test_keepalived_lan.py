"""
The sidecar and real keepalived moving the VIP between two network
namespaces, with a stand-in daemon (tests.ha.fakenode) that answers DNS
with its own address: the VRRP side of failover on its own.  The full
product test with real daemons is tests.ha.test_failover.
"""

import os
import shutil
import signal
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.ha import netns
from tests.ha.fakes import write_config
from tests.ha.lan import Node, Prober
from tests.ha.netns import ADDRESSES, VIP, Lan

HTTP_PORT = 8080


class KeepalivedLanTests(SynchronousTestCase):
    def setUp(self):
        reason = netns.skip_reason()
        if reason:
            raise self.skipTest(reason)
        if shutil.which("keepalived") is None:
            self.fail("keepalived is not installed: run scripts/setup --test")
        self.lan = Lan(self)
        self.nodes = {h: Node(self.lan, h) for h in ("a", "b")}
        self.fakes = {}

    def start_fake(self, host):
        node = self.nodes[host]
        ready = os.path.join(node.data_dir, "ready")
        self.fakes[host] = self.lan.spawn(
            host, [sys.executable, "-m", "tests.ha.fakenode",
                   "--dns", f"{node.address},{VIP}", "--http", f"{node.address}:{HTTP_PORT}",
                   "--answer", node.address, "--ready-file", ready],
            node.log_path("fakenode"))
        return ready

    def configure(self, host, priority, **fields):
        node = self.nodes[host]
        write_config(node.data_dir, password="a|b&c", daemon_host=node.address,
                     daemon_port=HTTP_PORT, priority=priority, vip=f"{VIP}/24", **fields)

    def wait_master(self, host, timeout=15):
        try:
            self.lan.wait_for(lambda: self.lan.vip_owners() == [host], timeout,
                              f"VIP on {host} only")
            self.lan.wait_for(lambda: self.nodes[host].role() == "leader", 5, f"{host} leader")
        except AssertionError as e:
            raise AssertionError(f"{e} (owners: {self.lan.vip_owners()})\n"
                                 + "\n".join(n.logs() for n in self.nodes.values())) from None

    def test_vip_follows_a_crashed_daemon_and_roles_follow_the_vip(self):
        for host, prio in (("a", 120), ("b", 110)):
            self.start_fake(host)
            self.configure(host, prio)
            self.nodes[host].start_sidecar()
        self.wait_master("a")
        self.lan.wait_for(lambda: self.nodes["b"].role() == "follower", 5, "b follower")
        prober = Prober(self.lan, self.nodes["a"].data_dir)
        prober.wait_answering(self.lan)
        self.assertEqual(prober.answers(0, time.time())[-1], ADDRESSES["a"])

        # SIGKILL the "daemon" on a: the sidecar notices the port vanish.
        killed_at = time.time()
        self.fakes["a"].send_signal(signal.SIGKILL)
        self.wait_master("b")
        self.lan.wait_for(lambda: prober.answers(killed_at, time.time())[-1:] == [ADDRESSES["b"]],
                          5, "answers from b")
        time.sleep(0.5)
        gap = prober.gap(killed_at - 0.5, time.time())
        self.lan.wait_for(lambda: self.nodes["a"].role() == "follower", 5, "a follower")
        self.assertLess(gap, 2.0, f"DNS gap {gap:.2f}s after SIGKILL")
        sys.stderr.write(f"\n[harness] SIGKILL gap: {gap:.2f}s\n")

        # Restart it: nopreempt, the VIP stays on b.
        self.start_fake("a")
        self.lan.wait_for(lambda: self.nodes["a"].status().get("daemonAlive"), 5, "a alive")
        time.sleep(4)  # longer than the master-down interval
        self.assertEqual(self.lan.vip_owners(), ["b"])
        self.assertEqual(self.nodes["a"].role(), "follower")

    def test_reload_changes_priority_without_moving_the_vip(self):
        for host, prio in (("a", 120), ("b", 110)):
            self.start_fake(host)
            self.configure(host, prio)
            self.nodes[host].start_sidecar()
        self.wait_master("a")
        pid = self.nodes["a"].status()["keepalivedPid"]
        self.configure("a", 100)  # now lower than b, but nopreempt
        self.lan.wait_for(lambda: "priority 100" in open(self.nodes["a"].paths.conf).read(),
                          5, "rendered")
        time.sleep(4)
        self.assertEqual(self.nodes["a"].status()["keepalivedPid"], pid)  # not restarted
        self.assertEqual(self.lan.vip_owners(), ["a"])

    def test_disable_hands_the_vip_over_at_once(self):
        for host, prio in (("a", 120), ("b", 110)):
            self.start_fake(host)
            self.configure(host, prio)
            self.nodes[host].start_sidecar()
        self.wait_master("a")
        started = time.monotonic()
        self.configure("a", 120, enabled=False)
        self.wait_master("b", timeout=5)
        self.assertLess(time.monotonic() - started, 3.0)
        self.lan.wait_for(lambda: self.nodes["a"].role() is None, 5, "a's role file removed")

    def test_readiness_gating_and_the_lone_node_rule(self):
        ready = {}
        for host, prio in (("a", 120), ("b", 110)):
            ready[host] = self.start_fake(host)
            self.configure(host, prio)
            self.nodes[host].start_sidecar()
        self.wait_master("a")
        # b stops being ready (a follower whose sync broke): FAULT.
        with open(ready["b"], "w") as f:
            f.write("no")
        self.lan.wait_for(lambda: self.nodes["b"].status().get("vrrpState") == "FAULT", 10,
                          "b in FAULT")
        # a hands the VIP over (sidecar restart: priority-0 advert). A ready b
        # would take it within a second; a not-ready b stays out, and a takes
        # the VIP back once its keepalived is up again.
        sidecar = self.nodes["a"].sidecar
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(15)
        self.nodes["a"].start_sidecar()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            self.assertNotIn("b", self.lan.vip_owners())
            time.sleep(0.1)
        self.wait_master("a")
        # a's daemon dies for good: b, not ready but alone, serves after all.
        self.fakes["a"].send_signal(signal.SIGKILL)
        self.wait_master("b", timeout=20)

    def test_sidecar_restart_moves_the_vip_to_a_ready_peer(self):
        """'Moving the VIP back' in docs/CLUSTER_HA.md (and the control for the gating test)."""
        for host, prio in (("a", 120), ("b", 110)):
            self.start_fake(host)
            self.configure(host, prio)
            self.nodes[host].start_sidecar()
        self.wait_master("a")
        started = time.monotonic()
        sidecar = self.nodes["a"].sidecar
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(15)
        self.nodes["a"].start_sidecar()
        self.wait_master("b", timeout=5)
        self.assertLess(time.monotonic() - started, 3.0)
        time.sleep(4.5)  # a is back as BACKUP and does not preempt
        self.assertEqual(self.lan.vip_owners(), ["b"])
        self.assertEqual(self.nodes["a"].role(), "follower")
