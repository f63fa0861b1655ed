"""
End to end: a real ``twistd sentinel`` forwarding to a local authoritative
upstream (tests.support.upstream), queried with dig, kdig and dnspython.
"""

import os
import random
import socket
import struct
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from tests.dns.clients import ZONE, addresses, dig, kdig, query, raw_udp
from tests.support.daemon import Daemon
from tests.support.upstream import SPOOF_ADDRESS, Upstream


class ForwardingTests(SynchronousTestCase):
    def setUp(self):
        self.up = Upstream.start(self, ZONE)
        self.d = Daemon(self, upstreams=[self.up.spec]).start()

    def test_record_types_over_udp_and_tcp(self):
        port = self.d.dns_port
        for tcp in (False, True):
            self.assertEqual(addresses(query(port, "www.example.test", "A", tcp=tcp)),
                             ["198.18.0.10"])
            self.assertEqual(addresses(query(port, "WWW.Example.TEST", "AAAA", tcp=tcp)),
                             ["2001:db8::10"])
        r = dig(self.d.dns_port, "alias.example.test")
        self.assertEqual(r.status, "NOERROR")
        self.assertEqual(r.answers, ["www.example.test.", "198.18.0.10"])
        self.assertIn("ra", r.flags)
        self.assertIn("rd", r.flags)
        self.assertEqual(dig(port, "example.test", "MX").answers, ["10 mail.example.test."])
        self.assertEqual(kdig(port, "+tcp", "example.test", "TXT").answers, ['"hello world"'])
        self.assertEqual(kdig(port, "+tcp", "example.test", "TXT").transport, "TCP")
        self.assertEqual(dig(port, "-x", "198.18.0.10").answers, ["www.example.test."])
        self.assertEqual(kdig(port, "-x", "198.18.0.10").answers, ["www.example.test."])

    def test_case_of_the_question_is_preserved(self):
        r = query(self.d.dns_port, "wWw.ExAmPlE.tEsT", "A")
        self.assertEqual(r.question[0].name.to_text(), "wWw.ExAmPlE.tEsT.")
        # A second, differently spelt query is a cache hit with its own spelling.
        r = query(self.d.dns_port, "WWW.EXAMPLE.TEST", "A")
        self.assertEqual(r.question[0].name.to_text(), "WWW.EXAMPLE.TEST.")
        self.assertEqual(self.up.count("www.example.test", "A"), 1)

    def test_truncation_and_tcp_retry(self):
        port = self.d.dns_port
        r = dig(port, "+noedns", "+ignore", "big.example.test", "TXT")
        self.assertIn("tc", r.flags)
        self.assertEqual(r.answers, [])
        r = dig(port, "+noedns", "big.example.test", "TXT")  # dig retries over TCP
        self.assertEqual(r.transport, "TCP")
        self.assertEqual(len(r.answers), 12)
        # The upstream truncated our UDP query too, and we retried over TCP.
        self.assertEqual(self.up.count("big.example.test", proto="tcp"), 1)
        # EDNS with a small buffer: truncated as well (client's size honoured).
        r = dig(port, "+bufsize=600", "+ignore", "big.example.test", "TXT")
        self.assertIn("tc", r.flags)

    def test_edns(self):
        port = self.d.dns_port
        r = query(port, "www.example.test", "A", use_edns=0, payload=4096, want_dnssec=True)
        self.assertEqual(r.edns, 0)
        self.assertEqual(r.payload, 1232)
        self.assertTrue(r.ednsflags & dns.flags.DO)
        r = query(port, "www.example.test", "A", use_edns=0)
        self.assertFalse(r.ednsflags & dns.flags.DO)
        r = query(port, "www.example.test", "A", use_edns=False)
        self.assertEqual(r.edns, -1)  # no OPT when the query had none
        r = dig(port, "+edns=1", "+noednsnegotiation", "www.example.test")
        self.assertEqual(r.status, "BADVERS")

    def test_ttl_counts_down(self):
        # The daemon ages answers in whole seconds of the wall clock
        # (int(now) - int(stored)): the TTL's drop follows how many second
        # boundaries passed between the two queries, which a loaded machine
        # can make more than the sleep.  Bounded by the same clock here.
        port = self.d.dns_port
        before_first = time.time()
        first = query(port, "short.example.test", "A").answer[0].ttl
        after_first = time.time()
        self.assertEqual(first, 30)
        time.sleep(2.1)
        before_second = time.time()
        second = query(port, "short.example.test", "A").answer[0].ttl
        after_second = time.time()
        least = int(before_second) - int(after_first)
        most = int(after_second) - int(before_first)
        self.assertGreaterEqual(least, 2)
        self.assertIn(30 - second, range(least, most + 1))
        self.assertEqual(self.up.count("short.example.test", "A"), 1)

    def test_negative_answers_are_cached(self):
        port = self.d.dns_port
        for _ in range(3):
            r = query(port, "missing.example.test", "A")
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)
            self.assertEqual(r.authority[0].rdtype, dns.rdatatype.SOA)
        for _ in range(2):
            r = query(port, "www.example.test", "MX")  # NODATA
            self.assertEqual(r.rcode(), dns.rcode.NOERROR)
            self.assertEqual(r.answer, [])
        self.assertEqual(self.up.count("missing.example.test"), 1)
        self.assertEqual(self.up.count("www.example.test", "MX"), 1)

    def test_spoofed_answers_are_ignored(self):
        for kind in ("id", "question"):
            self.up.spoof = kind
            name = f"{kind}.spoof.test"
            self.up.set_zone(dict(ZONE, **{name: {"A": ["198.18.0.99"]}}))
            r = query(self.d.dns_port, name, "A")
            self.assertEqual(addresses(r), ["198.18.0.99"])
            self.assertNotIn(SPOOF_ADDRESS, addresses(r))

    def test_malformed_packets_never_crash_or_stall(self):
        port = self.d.dns_port
        rng = random.Random(7)
        good = dns.message.make_query("www.example.test", "A").to_wire()
        junk = [b"", b"\x00", b"x" * 11, os.urandom(12), os.urandom(600),
                good[:15], good[:-2], good + b"trailing",
                good[:12] + b"\xc0\x0c" + good[-4:],  # pointer loop in the question
                good[:12] + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label > 63
                struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + good[12:],  # a response
                struct.pack("!HHHHHH", 2, 0, 0, 0, 0, 0),  # no question
                struct.pack("!HHHHHH", 3, 0, 2, 0, 0, 0) + good[12:] * 2]
        junk += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 80)))
                 for _ in range(200)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for payload in junk:
                s.sendto(payload, ("127.0.0.1", port))
        # FORMERR for a broken body behind a usable header, silence for garbage.
        reply, _ = raw_udp(port, good[:-2])
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.FORMERR)
        self.assertEqual(raw_udp(port, b"\x01\x02\x03")[0], None)
        self.assertEqual(raw_udp(port, struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0)
                                 + good[12:])[0], None)
        # Garbage over TCP closes that connection only.
        with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
            c.sendall(b"\x00\x05hello")
        # Still serving, quickly, over both transports.
        self.assertEqual(addresses(query(port, "www.example.test", "A")), ["198.18.0.10"])
        self.assertEqual(addresses(query(port, "www.example.test", "A", tcp=True)),
                         ["198.18.0.10"])
        self.assertEqual(self.d.process.poll(), None)


class FailoverTests(SynchronousTestCase):
    def test_dead_first_upstream(self):
        dead = Upstream.start(self, ZONE)
        dead.mode = "dead"
        good = Upstream.start(self, ZONE)
        d = Daemon(self, upstreams=["127.0.0.1:9", dead.spec, good.spec]).start()
        r = query(d.dns_port, "www.example.test", "A", timeout=8)
        self.assertEqual(addresses(r), ["198.18.0.10"])
        self.assertEqual(dead.count("www.example.test"), 1)
        # Marked unhealthy after a few failures: later misses go straight to the good one.
        for i in range(4):
            query(d.dns_port, f"n{i}.example.test", "A", timeout=8)
        start = time.monotonic()
        query(d.dns_port, "mail.example.test", "A", timeout=8)
        self.assertLess(time.monotonic() - start, 1.0)

    def test_servfail_moves_to_the_next_upstream(self):
        bad = Upstream.start(self, ZONE)
        bad.mode = "servfail"
        good = Upstream.start(self, ZONE)
        d = Daemon(self, upstreams=[bad.spec, good.spec]).start()
        self.assertEqual(addresses(query(d.dns_port, "www.example.test", "A")),
                         ["198.18.0.10"])
        self.assertEqual(bad.count(), 1)

    def test_itself_as_upstream_is_never_used(self):
        good = Upstream.start(self, ZONE)
        d = Daemon(self)
        d.upstreams = (f"127.0.0.1:{d.dns_port}", good.spec)  # a forwarding loop
        d.start()
        start = time.monotonic()
        self.assertEqual(addresses(query(d.dns_port, "www.example.test", "A")),
                         ["198.18.0.10"])
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIn("forwarding loop", d.log())

    def test_all_upstreams_failing_gives_servfail(self):
        bad = Upstream.start(self, ZONE)
        bad.mode = "servfail"
        d = Daemon(self, upstreams=[bad.spec]).start()
        r = query(d.dns_port, "www.example.test", "A")
        self.assertEqual(r.rcode(), dns.rcode.SERVFAIL)


class AddressTests(SynchronousTestCase):
    def test_secondary_address_answered_from_that_address(self):
        up = Upstream.start(self, ZONE)
        # No --dns-interface: every address (the wildcard sockets).
        d = Daemon(self, upstreams=[up.spec], args=["--dns-interface", ""]).start()
        q = dns.message.make_query("www.example.test", "A").to_wire()
        for server in ("127.0.0.1", "127.0.0.2", "127.0.0.53"):
            reply, source = raw_udp(d.dns_port, q, server=server, timeout=3)
            self.assertEqual(source, server)
            self.assertEqual(addresses(dns.message.from_wire(reply)), ["198.18.0.10"])
            r = query(d.dns_port, "www.example.test", "A", tcp=True, server=server)
            self.assertEqual(addresses(r), ["198.18.0.10"])
        reply, source = raw_udp(d.dns_port, q, server="::1", timeout=3)
        self.assertEqual(source, "::1")

    def test_configured_addresses_only(self):
        up = Upstream.start(self, ZONE)
        d = Daemon(self, upstreams=[up.spec],
                   args=["--dns-interface", "127.0.0.3,127.0.0.4"]).start()
        q = dns.message.make_query("www.example.test", "A").to_wire()
        for server in ("127.0.0.3", "127.0.0.4"):
            reply, source = raw_udp(d.dns_port, q, server=server, timeout=3)
            self.assertEqual(source, server)
        self.assertEqual(raw_udp(d.dns_port, q, server="127.0.0.5", timeout=0.5), (None, None))
