"""TCP framing, the self-probe, access rules and settings (pure parts)."""

import struct

import dns.message
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.access import DENIED, LIMITED, OK, SLIP, Access
from sentinel.dns.probe import DnsProbe
from sentinel.dns.settings import DEFAULTS, SettingsError, blocking, from_data, merged
from sentinel.dns.stats import DnsStats
from sentinel.dns.tcpserver import DnsTcpFactory
from tests.dns.fakes import FakePolicy, Harness, block


def frame(message):
    wire = message if isinstance(message, bytes) else message.to_wire()
    return struct.pack("!H", len(wire)) + wire


def frames(data):
    out = []
    while data:
        n = struct.unpack("!H", data[:2])[0]
        out.append(dns.message.from_wire(data[2:2 + n]))
        data = data[2 + n:]
    return out


class TcpTests(SynchronousTestCase):
    def connect(self, factory, clock):
        proto = factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.168.1.20", 5000),
                                    hostAddress=IPv4Address("TCP", "192.168.1.2", 53))
        proto.makeConnection(transport)
        return proto, transport

    def setup(self, **kw):
        h = Harness(FakePolicy(default=block()))
        clock = h.clock
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=clock, **kw)
        return h, factory, clock

    def test_several_queries_per_connection_split_anyhow(self):
        h, factory, clock = self.setup()
        proto, transport = self.connect(factory, clock)
        data = b"".join(frame(dns.message.make_query(f"n{i}.example", "A")) for i in range(3))
        for i in range(0, len(data), 7):  # arbitrary segmentation
            proto.dataReceived(data[i:i + 7])
        replies = frames(transport.value())
        self.assertEqual([r.question[0].name.to_text() for r in replies],
                         ["n0.example.", "n1.example.", "n2.example."])
        self.assertTrue(all(r.rcode() == 3 for r in replies))

    def test_idle_timeout(self):
        h, factory, clock = self.setup(idle_timeout=10)
        proto, transport = self.connect(factory, clock)
        clock.advance(9)
        proto.dataReceived(frame(dns.message.make_query("x.example", "A")))
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_connection_cap(self):
        h, factory, clock = self.setup(max_connections=2)
        conns = [self.connect(factory, clock) for _ in range(3)]
        self.assertFalse(conns[0][1].disconnecting)
        self.assertTrue(conns[2][1].disconnected or conns[2][1].disconnecting)
        conns[0][0].connectionLost(None)
        self.assertEqual(factory.connections, 2)

    def connect_from(self, factory, host):
        from twisted.internet.address import IPv6Address

        proto = factory.buildProtocol(None)
        kind = IPv6Address if ":" in host else IPv4Address
        transport = StringTransport(peerAddress=kind("TCP", host, 5000),
                                    hostAddress=kind("TCP", host, 53))
        proto.makeConnection(transport)
        return proto, transport

    def test_connections_per_client_cap(self):
        # One device holding every connection (a query every few seconds
        # keeps each open) would shut every other client out of TCP.
        h, factory, clock = self.setup(max_connections=10, max_per_client=2)
        gone = lambda conn: conn[1].disconnected or conn[1].disconnecting  # noqa: E731
        mine = [self.connect_from(factory, "192.168.1.20") for _ in range(2)]
        mapped = self.connect_from(factory, "::ffff:192.168.1.20")  # the same device
        other = self.connect_from(factory, "192.168.1.21")
        self.assertEqual([gone(c) for c in mine + [mapped, other]], [False, False, True, False])
        self.assertEqual(h.engine.stats.snapshot()["dropped"], {"tcp_per_client": 1})
        mapped[0].connectionLost(None)  # an aborted one frees nothing of the device's
        mine[0][0].connectionLost(None)
        again = self.connect_from(factory, "192.168.1.20")
        self.assertFalse(gone(again))
        again[0].dataReceived(frame(dns.message.make_query("x.example", "A")))
        self.assertEqual(len(frames(again[1].value())), 1)
        for proto, _ in (mine[1], again, other):
            proto.connectionLost(None)
        self.assertEqual((factory.connections, factory.per_client), (0, {}))

    def test_exempt_networks_have_no_per_client_cap(self):
        h, factory, clock = self.setup(max_per_client=1)
        factory.exempt = Access().exempt_ip  # loopback, by default
        conns = [self.connect_from(factory, "127.0.0.1") for _ in range(3)]
        self.assertFalse(any(t.disconnecting for _, t in conns))
        self.assertEqual(factory.per_client, {})

    def test_settings_set_the_per_client_cap(self):
        from twisted.internet import reactor

        from sentinel.dns.runtime import DnsRuntime

        h, factory, clock = self.setup()
        self.assertEqual(factory.max_per_client, DEFAULTS.tcp_max_connections_per_client)
        runtime = DnsRuntime(reactor, h.engine, factory, ("127.0.0.1:5300",), 5353)
        runtime.apply(from_data({"tcp_max_connections_per_client": 3}))
        self.addCleanup(h.engine.forwarder.stop)
        self.assertEqual(factory.max_per_client, 3)
        self.assertTrue(factory.exempt("127.0.0.1"))
        self.assertFalse(factory.exempt("192.168.1.20"))
        with self.assertRaises(SettingsError):
            from_data({"tcp_max_connections_per_client": 0})

    def test_garbage_closes_the_connection(self):
        h, factory, clock = self.setup()
        proto, transport = self.connect(factory, clock)
        proto.dataReceived(frame(b"\x00\x01\x02"))
        self.assertTrue(transport.disconnecting)

    def test_big_answers_are_not_truncated(self):
        h = Harness()
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=h.clock)
        proto, transport = self.connect(factory, h.clock)
        proto.dataReceived(frame(dns.message.make_query("big.example", "TXT")))
        h.upstream_answers(*[("big.example.", 60, "IN", "TXT", f'"{i}{"x" * 200}"')
                             for i in range(20)])
        [reply] = frames(transport.value())
        self.assertEqual(len(reply.answer[0]), 20)


class AbortRecordingTransport(StringTransport):
    aborted = False

    def abortConnection(self):
        self.aborted = True
        super().abortConnection()


class TcpFlowTests(SynchronousTestCase):
    """Reading pauses and resumes: outstanding queries, unread answers."""

    def connect(self, factory):
        proto = factory.buildProtocol(None)
        transport = AbortRecordingTransport(
            peerAddress=IPv4Address("TCP", "192.168.1.20", 5000),
            hostAddress=IPv4Address("TCP", "192.168.1.2", 53))
        proto.makeConnection(transport)
        return proto, transport

    def test_pipelined_queries_beyond_the_cap_are_all_answered(self):
        """
        A client pipelines 100 queries in one segment and waits: reading
        pauses at 32 outstanding, and the rest are answered as the first
        ones complete, without the client sending anything more.
        """
        h = Harness()
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=h.clock)
        proto, transport = self.connect(factory)
        proto.dataReceived(b"".join(frame(dns.message.make_query(f"n{i}.example", "A"))
                                    for i in range(100)))
        self.assertEqual(len(h.transports[0].sent), 32)
        self.assertEqual(transport.producerState, "paused")
        answered = 0
        while answered < len(h.transports[0].sent):
            attempt = h.transports[0].sent[answered]
            header = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            name = dns.message.from_wire(header + attempt.question).question[0].name.to_text()
            h.upstream_answers((name, 60, "IN", "A", "198.18.0.1"), which=answered)
            answered += 1
        replies = frames(transport.value())
        self.assertEqual(sorted(r.question[0].name.to_text() for r in replies),
                         sorted(f"n{i}.example." for i in range(100)))
        self.assertEqual(transport.producerState, "producing")

    def test_reading_pauses_while_answers_are_not_read(self):
        h = Harness(FakePolicy(default=block()))
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=h.clock)
        proto, transport = self.connect(factory)
        self.assertIs(transport.producer, proto)
        self.assertTrue(transport.streaming)
        queries = [frame(dns.message.make_query(f"n{i}.example", "A")) for i in range(6)]
        proto.dataReceived(queries[0])
        proto.pauseProducing()  # as the transport does when its send buffer is full
        self.assertEqual(transport.producerState, "paused")
        # what was already received when the buffer filled waits too
        proto.dataReceived(b"".join(queries[1:4]))
        self.assertEqual(len(frames(transport.value())), 1)
        proto.resumeProducing()  # the buffer has drained
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(len(frames(transport.value())), 4)
        proto.dataReceived(b"".join(queries[4:]))
        self.assertEqual(len(frames(transport.value())), 6)

    def test_a_client_that_never_reads_is_aborted_at_the_idle_timeout(self):
        h = Harness(FakePolicy(default=block()))
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=h.clock, idle_timeout=10)
        proto, transport = self.connect(factory)
        proto.dataReceived(frame(dns.message.make_query("n.example", "A")))
        proto.pauseProducing()
        h.clock.advance(9)
        self.assertFalse(transport.aborted)
        h.clock.advance(2)
        self.assertTrue(transport.aborted)
        self.assertEqual(h.engine.stats.dropped, {"tcp_unread": 1})

    def test_an_idle_reading_client_is_closed_politely(self):
        h = Harness(FakePolicy(default=block()))
        factory = DnsTcpFactory(h.engine, h.engine.stats, clock=h.clock, idle_timeout=10)
        proto, transport = self.connect(factory)
        proto.dataReceived(frame(dns.message.make_query("n.example", "A")))
        h.clock.advance(11)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)


class ProbeTests(SynchronousTestCase):
    def test_healthy_only_while_answers_come_back(self):
        clock = Clock()
        sent = []
        probe = DnsProbe(clock, sent.append, interval=5)
        self.assertFalse(probe.healthy())
        probe.start()
        self.assertEqual(len(sent), 1)
        probe.received(sent[-1][:2] + b"\x80\x00" + sent[-1][4:])
        self.assertTrue(probe.healthy())
        probe.received(b"\x00\x00\x80\x00")  # wrong ID: ignored
        for _ in range(3):
            clock.advance(5)  # probes go out, nothing answers
        self.assertEqual(len(sent), 4)
        self.assertFalse(probe.healthy())
        probe.received(sent[-1][:2] + b"\x80\x00" + sent[-1][4:])
        self.assertTrue(probe.healthy())
        probe.stop()


    def test_a_failing_probe_does_not_stop_the_probes(self):
        """One failure (here: reading the OS random source) costs one probe,
        not every later one: a node stuck unhealthy would never get the VIP."""
        from sentinel.dns import probe as module
        from sentinel.dns.wire import RandomIds

        failing = [OSError("getrandom failed")]

        def urandom(n):
            if failing:
                raise failing.pop()
            return b"\x12\x34" * (n // 2)

        ids = RandomIds()
        ids._urandom = urandom
        self.patch(module, "random_ids", ids)
        clock = Clock()
        sent = []
        probe = DnsProbe(clock, sent.append, interval=5)
        probe.start()
        self.assertEqual((sent, len(self.flushLoggedErrors(OSError))), ([], 1))
        clock.advance(5)
        self.assertEqual(len(sent), 1)
        probe.received(sent[-1][:2] + b"\x80\x00" + sent[-1][4:])
        self.assertTrue(probe.healthy())
        probe.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

class AccessRuleTests(SynchronousTestCase):
    def test_default_networks(self):
        a = Access()
        for ip in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fe80::1",
                   "fd00::1", "169.254.1.1", "100.64.0.1", "::ffff:192.168.1.1"):
            self.assertEqual(a.check(ip, 0), OK, ip)
        for ip in ("8.8.8.8", "2001:4860::1", "172.32.0.1", "not-an-ip"):
            self.assertEqual(a.check(ip, 0), DENIED, ip)

    def test_loopback_always_allowed_and_custom_networks(self):
        a = Access(allowed=["198.18.0.0/15"], rate=0)
        self.assertEqual(a.check("198.19.1.1", 0), OK)
        self.assertEqual(a.check("127.0.0.1", 0), OK)
        self.assertEqual(a.check("192.168.1.1", 0), DENIED)

    def test_token_bucket(self):
        a = Access(rate=2, burst=4, exempt=[], slip=2)
        results = [a.check("192.168.1.5", 100.0) for _ in range(8)]
        self.assertEqual(results, [OK] * 4 + [LIMITED, SLIP, LIMITED, SLIP])
        self.assertEqual(a.check("192.168.1.6", 100.0), OK)  # per client
        self.assertEqual(a.check("192.168.1.5", 100.5), OK)  # 1 token back
        self.assertNotEqual(a.check("192.168.1.5", 100.5), OK)
        self.assertEqual(a.check("127.0.0.1", 0), OK)

    def test_a_full_table_keeps_limiting_the_clients_it_limits(self):
        # The table used to be emptied when full: a flood of random source
        # addresses gave every limited client a full burst again.
        a = Access(rate=10, burst=20, slip=0, max_clients=100)
        flooder = "192.168.1.5"
        self.assertEqual([a.check(flooder, 0.0) for _ in range(21)], [OK] * 20 + [LIMITED])
        self.assertEqual(a.check("8.8.8.8", 0.0), DENIED)  # a verdict (forgettable)
        for i in range(98):
            self.assertEqual(a.check(f"fd00::{i + 1:x}", 0.0), OK)
        self.assertEqual(len(a._clients), 100)
        # Full: the verdict is forgotten, which makes room for one; then
        # nothing is forgettable: the flooder stays limited, and new
        # addresses share one bucket (burst 20) instead of getting 20 each.
        self.assertEqual(a.check(flooder, 0.05), LIMITED)
        spray = [a.check(f"fd00::1:{i:x}", 0.05) for i in range(30)]
        self.assertEqual(spray, [OK] + [OK] * 20 + [LIMITED] * 9)
        self.assertEqual((len(a._clients), a.overflowed), (100, 29))
        stats = DnsStats()
        stats.access = a
        self.assertEqual(stats.snapshot()["rate_limit_shared"], 29)
        self.assertEqual(a.check(flooder, 0.05), LIMITED)
        self.assertEqual(a.check("127.0.0.1", 0.05), OK)  # verdicts still apply
        self.assertEqual(a.check("8.8.4.4", 0.05), DENIED)
        # Two seconds later the buckets have refilled: forgotten, room again.
        self.assertEqual(a.check("fd00::2:1", 2.5), OK)
        self.assertEqual(len(a._clients), 1)
        self.assertEqual(a.check(flooder, 2.5), OK)


class SettingsTests(SynchronousTestCase):
    def test_defaults(self):
        self.assertEqual(from_data(None), DEFAULTS)
        self.assertEqual(from_data({}), DEFAULTS)
        self.assertEqual(DEFAULTS.blocking_mode, "nxdomain")
        self.assertIn("192.168.0.0/16", DEFAULTS.allowed_networks)
        self.assertEqual(from_data(DEFAULTS.to_data()), DEFAULTS)

    def test_errors_name_the_field(self):
        cases = [
            ({"upstreams": ["tls://dns.example"]}, "upstreams.0"),
            ({"upstreams": ["999.1.1.1"]}, "upstreams.0"),
            ({"blocking_mode": "sinkhole"}, "blocking_mode"),
            ({"allowed_networks": ["10.0.0.0/8", "lan"]}, "allowed_networks.1"),
            ({"cache_min_ttl": 600, "cache_max_ttl": 60}, "cache_min_ttl"),
            ({"cache_size": -1}, "cache_size"),
            ({"surprise": 1}, "(settings)"),
            ([], "(settings)"),
        ]
        for data, field in cases:
            with self.assertRaises(SettingsError) as cm:
                from_data(data)
            self.assertEqual(cm.exception.field, field, data)

    def test_partial_update_merges(self):
        data = merged({"blocking_mode": "null", "cache_size": 5}, {"cache_size": 10})
        self.assertEqual(data, {"blocking_mode": "null", "cache_size": 10})

    def test_blocking_for_filtering_never_raises(self):
        self.assertEqual(blocking(None), ("nxdomain", 10))
        self.assertEqual(blocking({"blocking_mode": "null", "blocked_ttl": 300}), ("null", 300))
        self.assertEqual(blocking({"blocking_mode": "bogus", "blocked_ttl": "x"}),
                         ("nxdomain", 10))
        self.assertEqual(blocking({"blocked_ttl": True}), ("nxdomain", 10))
        self.assertEqual(blocking("garbage"), ("nxdomain", 10))


class StatsTests(SynchronousTestCase):
    def test_snapshot_shape(self):
        h = Harness(FakePolicy({"ads.example.": block()}))
        h.ask("ads.example")
        h.ask("www.example")
        h.upstream_answers(("www.example.", 60, "IN", "A", "198.18.0.1"))
        h.ask("www.example")
        snap = h.engine.stats.snapshot()
        self.assertEqual(snap["queries"], 3)
        self.assertEqual((snap["cache_hits"], snap["cache_misses"]), (1, 1))
        self.assertEqual(snap["decisions"]["block"], 1)
        self.assertEqual(snap["decisions"]["pass"], 2)
        up = snap["upstreams"]["127.0.0.1:53000"]
        self.assertEqual((up["queries"], up["answers"], up["latency_count"]), (1, 1, 1))
        self.assertTrue(up["healthy"])
        self.assertEqual(snap["cache_entries"], 1)
        self.assertEqual(snap["rcodes"], {"NOERROR": 2, "NXDOMAIN": 1})
        self.assertIsInstance(DnsStats().snapshot()["dropped"], dict)
