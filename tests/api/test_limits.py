"""
HTTP connection limits and request deadlines (sentinel.api.site.HttpLimits):
a slow or greedy client cannot hold the admin API's connections -- and the
file descriptors DNS needs -- forever.  Unit tests drive the real channel
with a Clock; the end-to-end test holds connections against a real daemon.
"""

import socket

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sentinel.api.base import endpoint
from sentinel.api.site import Gate, HttpLimits, Site
from tests.support.daemon import Daemon

LIMITS = HttpLimits()
HEAD = b"GET /api/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Slow:
    def __init__(self):
        self.pending = []

    @endpoint("GET", "/api/slow", auth="none")
    async def slow(self, call):
        d = Deferred()
        self.pending.append(d)
        return await d

    @endpoint("POST", "/api/echo", auth="none", body={"type": "object"})
    async def echo(self, call):
        return call.body


class DeadlineTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.area = Slow()
        self.factory = Site([self.area], Gate()).site(reactor=self.clock)

    def connect(self, host="198.18.0.1"):
        proto = self.factory.buildProtocol(IPv4Address("TCP", host, 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        self.addCleanup(lambda: transport.disconnecting or proto.connectionLost(None))
        return proto, transport

    def test_idle_connection_is_closed(self):
        _, transport = self.connect()
        self.clock.advance(LIMITS.idle - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_headers_dribbled_byte_by_byte_are_cut_off(self):
        proto, transport = self.connect()
        header = HEAD + b"X-Slow: " + b"a" * 100
        for i, byte in enumerate(header):
            if transport.disconnecting:
                break
            proto.dataReceived(bytes([byte]))
            self.clock.advance(1)  # never idle long enough for the idle timeout
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(i, LIMITS.headers + 1)

    def test_body_dribbled_slowly_is_cut_off(self):
        proto, transport = self.connect()
        proto.dataReceived(b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        waited = 0
        while not transport.disconnecting and waited < 1000:
            self.clock.advance(10)
            waited += 10
            proto.dataReceived(b" ")
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(waited, LIMITS.request + 10)
        self.assertEqual(transport.value(), b"")

    def test_a_long_answer_is_not_cut_off_and_the_next_request_gets_a_fresh_deadline(self):
        proto, transport = self.connect()
        proto.dataReceived(HEAD + b"\r\n")
        self.clock.advance(LIMITS.request * 2)  # e.g. a sync long-poll
        self.assertFalse(transport.disconnecting)
        self.area.pending.pop().callback({"ok": True})
        self.assertIn(b"200 OK", transport.value())
        transport.clear()
        self.clock.advance(LIMITS.idle - 1)
        proto.dataReceived(HEAD + b"\r\n")
        self.area.pending.pop().callback({"ok": True})
        self.assertIn(b"200 OK", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_connections_per_client_and_in_all_are_capped(self):
        limits = HttpLimits(per_client=2, connections=3)
        factory = Site([self.area], Gate()).site(reactor=self.clock, limits=limits)

        def build(host):
            return factory.buildProtocol(IPv4Address("TCP", host, 40000))

        a1, a2 = build("198.18.0.1"), build("198.18.0.1")
        for p in (a1, a2):
            p.makeConnection(StringTransport())
        self.assertIsNone(build("198.18.0.1"))  # a third from the same client
        b1 = build("198.18.0.2")
        b1.makeConnection(StringTransport())
        self.assertIsNone(build("198.18.0.3"))  # the total is reached
        a1.connectionLost(None)
        a3 = build("198.18.0.1")
        self.assertIsNotNone(a3)
        a3.makeConnection(StringTransport())
        for p in (a2, a3, b1):
            p.connectionLost(None)
        self.assertEqual(factory.open_connections, {})

    def test_an_ipv6_client_cannot_take_every_connection_by_changing_address(self):
        limits = HttpLimits(per_client=2, connections=3)
        factory = Site([self.area], Gate()).site(reactor=self.clock, limits=limits)

        def build(host):
            return factory.buildProtocol(IPv6Address("TCP", host, 40000))

        mine = [build("2001:db8:0:1::1"), build("2001:db8:0:1::2")]
        for p in mine:
            p.makeConnection(StringTransport())
        self.assertIsNone(build("2001:db8:0:1::3"))  # same device, a new privacy address
        other = build("2001:db8:0:2::1")  # another network still gets in
        self.assertIsNotNone(other)
        other.makeConnection(StringTransport())
        for p in mine + [other]:
            p.connectionLost(None)
        self.assertEqual(factory.open_connections, {})


class DaemonLimitTests(SynchronousTestCase):
    def test_idle_connections_cannot_take_every_slot_or_stop_dns(self):
        import dns.message
        import dns.query

        daemon = Daemon(self).start()
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(LIMITS.per_client):
            s = socket.create_connection((daemon.host, daemon.http_port), timeout=5)
            s.sendall(b"GET /api/health HTTP/1.1\r\n")  # and never finish
            held.append(s)
        extra = socket.create_connection((daemon.host, daemon.http_port), timeout=5)
        held.append(extra)
        try:
            extra.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            closed = extra.recv(100) == b""
        except ConnectionResetError:
            closed = True
        self.assertTrue(closed, "a connection beyond the per-client cap was served")
        # DNS is untouched.
        query = dns.message.make_query("example.com.", "A")
        answer = dns.query.udp(query, daemon.host, port=daemon.dns_port, timeout=5)
        self.assertEqual(answer.id, query.id)
        for s in held:
            s.close()
        held.clear()
        for _ in range(50):  # the daemon sees the closes asynchronously
            if daemon.get("/api/health", timeout=5).status == 200:
                break
        self.assertEqual(daemon.get("/api/health", timeout=5).status, 200)
