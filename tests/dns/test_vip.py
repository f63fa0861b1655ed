"""
The VIP appears and disappears while the daemon runs: in a network
namespace of our own (loopback only, addresses from 198.18.0.0/15), a
real daemon answers queries to an address added after it started — from
that address — with no restart, in both listener modes.
"""

import subprocess

import dns.message
import dns.query
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.api import isolated
from tests.dns.clients import ZONE, addresses, raw_udp
from tests.support.upstream import Upstream

VIP = "198.18.0.53"


def ip(ns, *argv):
    subprocess.run(["ip", "-n", ns] + list(argv), check=True, capture_output=True, timeout=30)


class VipTests(SynchronousTestCase):
    def setUp(self):
        reason = isolated.skip_reason()
        if reason:
            raise SkipTest(reason)
        self.ns = isolated.loopback_namespace(self)
        # The upstream's sockets are made inside the namespace.
        self.up = isolated.in_namespace(self.ns, Upstream.start, self, ZONE)

    def ask(self, server, tcp=False):
        # From 127.0.0.1: 198.18.0.0/15 is not an allowed source network.
        q = dns.message.make_query("www.example.test", "A")
        if tcp:
            r = isolated.in_namespace(self.ns, dns.query.tcp, q, server, source="127.0.0.1",
                                      port=self.d.dns_port, timeout=3)
            return addresses(r), server
        reply, source = isolated.in_namespace(self.ns, raw_udp, self.d.dns_port, q.to_wire(),
                                              server=server, timeout=2, source="127.0.0.1")
        return (addresses(dns.message.from_wire(reply)) if reply else None), source

    def check_vip_lifecycle(self, vip):
        self.assertRaises(OSError, self.ask, vip)  # not configured: no route at all
        for _ in range(2):  # added, removed, added again: no restart
            ip(self.ns, "addr", "add", f"{vip}/32", "dev", "lo")
            self.assertEqual(self.ask(vip), (["198.18.0.10"], vip))
            self.assertEqual(self.ask(vip, tcp=True), (["198.18.0.10"], vip))
            ip(self.ns, "addr", "del", f"{vip}/32", "dev", "lo")
            self.assertRaises(OSError, self.ask, vip)
        self.assertIsNone(self.d.process.poll())

    def test_wildcard_listener_serves_a_vip_added_later(self):
        self.d = isolated.IsolatedDaemon(self, self.ns, upstreams=[self.up.spec],
                                         args=["--dns-interface", ""]).start()
        self.check_vip_lifecycle(VIP)

    def test_configured_vip_can_be_bound_before_it_exists(self):
        self.d = isolated.IsolatedDaemon(
            self, self.ns, upstreams=[self.up.spec],
            args=["--dns-interface", f"127.0.0.1,{VIP}"]).start()
        self.assertEqual(self.ask("127.0.0.1"), (["198.18.0.10"], "127.0.0.1"))
        self.check_vip_lifecycle(VIP)
