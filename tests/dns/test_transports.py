"""
The upstream transports against real servers on loopback: UDP (ID and
question matching, source-port rotation), TCP (pipelining), DNS over TLS
and DNS over HTTPS (certificate checks).
"""

import dns.message
import dns.rrset
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.basic import Int16StringReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.dns.answer import parse_response
from sentinel.dns.doh import DohTransport
from sentinel.dns.forwarder import Forwarder, Upstream
from sentinel.dns.stats import UpstreamStats
from sentinel.dns.stream import StreamTransport
from sentinel.dns.udp import UdpTransport
from sentinel.dns.upstreamspec import parse_upstream
from sentinel.dns.wire import name_from_text
from tests.dns.clients import ZONE
from tests.dns.tlsservers import listen_doh, listen_dot, make_ca_and_server
from tests.support.upstream import SPOOF_ADDRESS, Upstream as TestUpstream


def question(name, rdtype=1):
    return name_from_text(name) + rdtype.to_bytes(2, "big") + b"\x00\x01"


def addresses(answer):
    body = answer.body
    out = []
    i = 0
    for _ in range(answer.counts[0]):
        i += 2  # compressed owner
        rtype, rdlen = int.from_bytes(body[i:i + 2], "big"), int.from_bytes(body[i + 8:i + 10],
                                                                            "big")
        if rtype == 1:
            out.append(".".join(str(b) for b in body[i + 10:i + 14]))
        i += 10 + rdlen
    return out


def factory_lines(testcase):
    """Log lines about factories starting or stopping from now on (none expected:
    twisted logs two per connection unless the factory is quiet)."""
    lines = []

    def observe(event):
        text = formatEvent(event)
        if "Starting factory" in text or "Stopping factory" in text:
            lines.append(text)

    globalLogPublisher.addObserver(observe)
    testcase.addCleanup(globalLogPublisher.removeObserver, observe)
    return lines


class Resolver:
    """A Forwarder over one real transport; resolve() -> Deferred(answer or None)."""

    def __init__(self, testcase, spec, transport, tcp=None, timeout=2.0):
        self.stats = UpstreamStats()
        self.fwd = Forwarder(reactor, lambda d, q, i: parse_response(d, q), self._done,
                             timeout=timeout)
        transport.stats = self.stats
        self.fwd.set_upstreams([Upstream(parse_upstream(spec), transport, self.stats, tcp=tcp)])
        self.fwd.start()
        self.waiting = {}
        testcase.addCleanup(self.fwd.stop)

    def _done(self, inflight, answer, upstream):
        self.waiting.pop(inflight.key).callback(answer)

    def resolve(self, name, rdtype=1):
        d = self.waiting[name + str(rdtype)] = Deferred()
        self.fwd.resolve(name + str(rdtype), question(name, rdtype), 0, None)
        return d


class UdpTransportTests(TestCase):
    async def test_answers_and_spoofs(self):
        up = TestUpstream.start(self, ZONE)
        r = Resolver(self, up.spec, UdpTransport(reactor, "127.0.0.1", up.port))
        self.assertEqual(addresses(await r.resolve("www.example.test")), ["198.18.0.10"])
        up.spoof = "id"
        answer = await r.resolve("mail.example.test")
        self.assertEqual(addresses(answer), ["198.18.0.25"])
        self.assertNotIn(SPOOF_ADDRESS, addresses(answer))
        up.spoof = "question"
        self.assertEqual(addresses(await r.resolve("short.example.test")), ["198.18.0.11"])
        self.assertEqual(r.stats.errors, {"spoofed": 2})

    async def test_https_and_other_types_with_letter_bytes(self):
        # Type 65 (HTTPS, asked by browsers for every page) is b"\x00\x41": the
        # question check lowercased it to 0x61 and dropped every answer as
        # spoofed (SERVFAIL after the timeout).  Same over TCP.
        up = TestUpstream.start(self, {"svc.example.test": {"HTTPS": ['1 . alpn="h2"']}})
        for spec, transport in (
                (up.spec, UdpTransport(reactor, "127.0.0.1", up.port)),
                ("tcp://" + up.spec, StreamTransport(reactor, "127.0.0.1", up.port))):
            r = Resolver(self, spec, transport)
            answer = await r.resolve("svc.example.test", 65)
            self.assertIsNotNone(answer)
            self.assertEqual(answer.counts, (1, 0, 0))
            answer = await r.resolve("svc.example.test", 90)  # 0x5a, no such record
            self.assertEqual((answer.rcode, answer.negative), (0, True))
            self.assertEqual(r.stats.errors, {})

    async def test_source_ports_rotate(self):
        up = TestUpstream.start(self, ZONE)
        transport = UdpTransport(reactor, "127.0.0.1", up.port, pool=2, rotate_after=3)
        r = Resolver(self, up.spec, transport)
        seen = set()
        for i in range(12):
            await r.resolve(f"n{i}.example.test")
            seen |= transport.local_ports
        self.assertGreaterEqual(len(seen), 4)  # at most 3 queries per socket
        self.assertLessEqual(len(transport.local_ports), 2)

    async def test_closed_port_fails_fast(self):
        r = Resolver(self, "127.0.0.1:9", UdpTransport(reactor, "127.0.0.1", 9), timeout=5)
        start = reactor.seconds()
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertLess(reactor.seconds() - start, 1.0)
        self.assertEqual(r.stats.errors, {"network": 1})

    async def test_unreachable_upstream_leaks_no_retired_socket(self):
        # Each socket carries one query, so each query retires the one
        # before it while that one still waits; the ICMP errors fail them.
        transport = UdpTransport(reactor, "127.0.0.1", 9, pool=1, rotate_after=1)
        r = Resolver(self, "127.0.0.1:9", transport, timeout=5)
        from twisted.internet.defer import gatherResults

        answers = await gatherResults([r.resolve(f"n{i}.example.test") for i in range(5)])
        self.assertEqual(answers, [None] * 5)
        self.assertEqual(r.stats.errors, {"network": 5})
        self.assertEqual(transport._retired, [])  # closed, not kept open forever
        self.assertEqual(len(transport.ports), 1)  # the pool's socket alone

    async def test_truncated_answer_retried_over_tcp(self):
        up = TestUpstream.start(self, ZONE)
        up.truncate = True
        r = Resolver(self, up.spec, UdpTransport(reactor, "127.0.0.1", up.port),
                     tcp=StreamTransport(reactor, "127.0.0.1", up.port))
        self.assertEqual(addresses(await r.resolve("www.example.test")), ["198.18.0.10"])
        self.assertEqual((up.count(proto="udp"), up.count(proto="tcp")), (1, 1))


class StreamTransportTests(TestCase):
    async def test_pipelined_on_one_connection(self):
        up = TestUpstream.start(self, ZONE)
        up.delay = 0.05
        t = StreamTransport(reactor, "127.0.0.1", up.port, idle_timeout=0.2)
        r = Resolver(self, "tcp://" + up.spec, t)
        logged = factory_lines(self)
        from twisted.internet.defer import gatherResults

        answers = await gatherResults([r.resolve(n) for n in (
            "www.example.test", "mail.example.test", "short.example.test")])
        self.assertEqual([addresses(a) for a in answers],
                         [["198.18.0.10"], ["198.18.0.25"], ["198.18.0.11"]])
        self.assertEqual(up.count(proto="tcp"), 3)
        self.assertIsNotNone(t._conn)
        d = Deferred()
        reactor.callLater(0.4, d.callback, None)
        await d
        self.assertIsNone(t._conn)  # closed when idle
        self.assertEqual(logged, [])  # connections are not logged

    async def test_connection_refused(self):
        r = Resolver(self, "tcp://127.0.0.1:9", StreamTransport(reactor, "127.0.0.1", 9))
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertEqual(r.stats.errors, {"network": 1})


class _FirstConnectionDeaf(Int16StringReceiver):
    """A DNS-over-TCP server whose first connection never answers (a dead peer)."""

    def connectionMade(self):
        self.factory.connections += 1
        self.deaf = self.factory.connections == 1

    def stringReceived(self, data):
        if self.deaf:
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                   "198.18.0.7"))
        self.sendString(response.to_wire())


class DeadStreamTests(TestCase):
    async def test_a_connection_that_answers_nothing_is_replaced(self):
        """
        The upstream's connection goes dead (no reset, nothing answered): the
        query on it times out, the connection is dropped, and the next query
        goes out on a new connection instead of timing out on the old one.
        """
        factory = Factory.forProtocol(_FirstConnectionDeaf)
        factory.connections = 0
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        spec = f"127.0.0.1:{port.getHost().port}"
        t = StreamTransport(reactor, "127.0.0.1", port.getHost().port)
        r = Resolver(self, "tcp://" + spec, t, timeout=0.3)
        self.assertIsNone(await r.resolve("one.example.test"))
        self.assertEqual(addresses(await r.resolve("two.example.test")), ["198.18.0.7"])
        self.assertEqual(factory.connections, 2)
        self.assertEqual(r.stats.errors, {"timeout": 1})


class TlsTransportTests(TestCase):
    def setUp(self):
        self.trust, self.server_options = make_ca_and_server(("dns.test",), ("127.0.0.1",))
        self.zone = TestUpstream(ZONE)
        self.port = listen_dot(reactor, self.zone, self.server_options)
        self.addCleanup(self.port.stopListening)
        self.portnum = self.port.getHost().port

    def transport(self, name):
        tls = optionsForClientTLS(name, trustRoot=self.trust)
        return StreamTransport(reactor, "127.0.0.1", self.portnum, tls=tls)

    async def test_verified_by_name_and_by_ip(self):
        logged = factory_lines(self)
        for name in ("dns.test", "127.0.0.1"):
            r = Resolver(self, f"tls://{name}:{self.portnum}#127.0.0.1", self.transport(name))
            self.assertEqual(addresses(await r.resolve("www.example.test")), ["198.18.0.10"])
        self.assertEqual(logged, [])

    async def test_wrong_name_is_refused(self):
        r = Resolver(self, f"tls://other.test:{self.portnum}#127.0.0.1",
                     self.transport("other.test"))
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertEqual(self.zone.queries, [])

    async def test_untrusted_certificate_is_refused(self):
        tls = optionsForClientTLS("dns.test", trustRoot=make_ca_and_server()[0])
        r = Resolver(self, f"tls://dns.test:{self.portnum}#127.0.0.1",
                     StreamTransport(reactor, "127.0.0.1", self.portnum, tls=tls))
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertEqual(self.zone.queries, [])


class _NeverAnswers:
    """treq's client, for a DoH upstream that takes every request and answers none."""

    def __init__(self):
        self.posts = []

    def post(self, url, data, headers):
        self.posts.append(Deferred())  # cancelling it fails it (CancelledError)
        return self.posts[-1]


class DohConcurrencyTests(SynchronousTestCase):
    """
    Each DoH request in progress holds a connection (HTTP/1.1): at most
    MAX_CONCURRENT at once per upstream, the next queries wait (at most
    MAX_WAITING), then fail over as overload.  Before, a slow upstream and
    a burst of new names opened a connection per query in flight.
    """

    def setUp(self):
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.results = []
        self.fwd = Forwarder(self.clock, lambda d, q, i: parse_response(d, q),
                             lambda inflight, answer, up: self.results.append(answer))
        spec = parse_upstream("https://doh.test/dns-query#127.0.0.1")
        self.transport = DohTransport(reactor, spec, optionsForClientTLS("doh.test"))
        self.addCleanup(self.transport.close)
        self.http = self.transport.http = _NeverAnswers()
        self.stats = UpstreamStats()
        self.fwd.set_upstreams([Upstream(spec, self.transport, self.stats)])

    def resolve(self, first, n):
        for i in range(first, first + n):
            self.fwd.resolve(b"k%d" % i, question(f"n{i}.example.test"), 0, None)

    def test_requests_in_progress_are_capped(self):
        from twisted.internet.error import ConnectionLost

        from sentinel.dns.doh import MAX_CONCURRENT, MAX_WAITING

        self.resolve(0, MAX_CONCURRENT + 10)
        self.assertEqual((len(self.http.posts), self.transport.active), (MAX_CONCURRENT,) * 2)
        self.http.posts[0].errback(ConnectionLost())  # one ends: the first waiting one starts
        self.assertEqual(len(self.http.posts), MAX_CONCURRENT + 1)
        self.assertEqual(self.transport.active, MAX_CONCURRENT)
        self.assertEqual(self.results, [None])
        self.resolve(1000, MAX_WAITING)  # 9 wait already: 9 of these find no room
        self.assertEqual(len(self.results), 1 + 9)
        self.assertEqual(self.stats.errors, {"network": 1, "overload": 9})
        self.assertEqual(len(self.http.posts), MAX_CONCURRENT + 1)

    def test_a_timeout_frees_its_slot(self):
        from sentinel.dns.doh import MAX_CONCURRENT

        self.fwd.start()
        self.addCleanup(self.fwd.stop)
        self.resolve(0, MAX_CONCURRENT)
        self.clock.advance(1.0)
        self.resolve(100, 5)  # waiting
        self.clock.advance(0.6)  # the first ones time out: their requests are cancelled
        self.assertEqual(len(self.results), MAX_CONCURRENT)
        self.assertEqual(len(self.http.posts), MAX_CONCURRENT + 5)
        self.assertEqual(self.transport.active, 5)
        self.clock.advance(1.5)
        self.assertEqual((len(self.results), self.transport.active), (MAX_CONCURRENT + 5, 0))
        self.assertEqual(self.stats.errors, {"timeout": MAX_CONCURRENT + 5})


class DohTransportTests(TestCase):
    def setUp(self):
        self.trust, options = make_ca_and_server(("doh.test",), ())
        self.zone = TestUpstream(ZONE)
        self.port, self.resource = listen_doh(reactor, self.zone, options)
        self.addCleanup(self.port.stopListening)
        self.portnum = self.port.getHost().port

    def resolver(self, name, timeout=2.0):
        spec = parse_upstream(f"https://{name}:{self.portnum}/dns-query#127.0.0.1")
        t = DohTransport(reactor, spec, optionsForClientTLS(name, trustRoot=self.trust))
        self.addCleanup(t.close)
        return Resolver(self, spec.text, t, timeout=timeout)

    async def test_an_endless_response_is_cut_off(self):
        """A response body over 64 KiB without a length: read no further, fail over."""
        self.zone.mode = "endless"
        r = self.resolver("doh.test", timeout=1.0)
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertEqual(r.stats.errors, {"http": 1})
        self.assertLess(self.resource.written, 4 * 1024 * 1024)

    async def test_post_wire_format(self):
        logged = factory_lines(self)
        r = self.resolver("doh.test")
        self.assertEqual(addresses(await r.resolve("www.example.test")), ["198.18.0.10"])
        self.assertEqual(logged, [])
        headers = self.resource.requests[0]
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/dns-message"])
        self.assertEqual(headers.getRawHeaders(b"host"), [f"doh.test:{self.portnum}".encode()])

    async def test_wrong_name_is_refused(self):
        r = self.resolver("evil.test")
        self.assertIsNone(await r.resolve("www.example.test"))
        self.assertEqual(self.resource.requests, [])
