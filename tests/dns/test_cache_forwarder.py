"""The cache and the forwarder (pure: Clock and fake transports)."""

import dns.message
import dns.rcode
import dns.rrset
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.answer import parse_response
from sentinel.dns.cache import MAX_BYTES, Cache, cost
from sentinel.dns.forwarder import DOWN_AFTER, Forwarder, Upstream
from sentinel.dns.stats import UpstreamStats
from sentinel.dns.upstreamspec import parse_upstream
from sentinel.dns.wire import Malformed, name_from_text

QUESTION = name_from_text("www.example.test") + b"\x00\x01\x00\x01"


def answer_wire(qid, question=QUESTION, rcode=0, tc=False, address="198.18.0.1", ttl=60):
    q = dns.message.from_wire(qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    elif rcode == 0:
        r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", "A", address))
    return r.to_wire()


class FakeTransport:
    def __init__(self):
        self.sent = []
        self.cancelled = []
        self.closed = False

    def send(self, attempt):
        self.sent.append(attempt)

    def cancel(self, attempt):
        self.cancelled.append(attempt)

    def close(self):
        self.closed = True

    def answer(self, i=-1, **kw):
        attempt = self.sent[i]
        attempt.answered(answer_wire(b"\x12\x34", attempt.question, **kw),
                         12 + len(attempt.question))


class Harness:
    def __init__(self, n=2, with_tcp=False, clock=None):
        self.clock = clock if clock is not None else Clock()
        self.clock.advance(1000)
        self.results = []
        self.fwd = Forwarder(self.clock, self.accept, self.done, timeout=1.0)
        self.transports, self.tcps, ups = [], [], []
        for i in range(n):
            t, tcp = FakeTransport(), FakeTransport() if with_tcp else None
            self.transports.append(t)
            self.tcps.append(tcp)
            ups.append(Upstream(parse_upstream(f"127.0.0.1:{1000 + i}"), t, UpstreamStats(),
                                tcp=tcp))
        self.fwd.set_upstreams(ups)
        self.fwd.start()

    def accept(self, data, qend, inflight):
        if data[qend:qend + 1] == b"":
            raise Malformed("empty")
        return parse_response(data, qend)

    def done(self, inflight, answer, upstream):
        self.results.append((inflight, answer, upstream))


class ForwarderTests(SynchronousTestCase):
    def test_first_upstream_answers(self):
        h = Harness()
        self.assertTrue(h.fwd.resolve(b"k", QUESTION, 0, "w1"))
        self.assertEqual(len(h.transports[0].sent), 1)
        self.assertEqual(h.transports[1].sent, [])
        h.transports[0].answer()
        [(inflight, answer, up)] = h.results
        self.assertEqual(inflight.waiters, ["w1"])
        self.assertEqual(answer.ttl, 60)
        self.assertEqual(up.text, "127.0.0.1:1000")
        self.assertEqual(h.fwd.inflight, {})
        self.assertEqual(up.stats.answers, 1)

    def test_identical_queries_are_coalesced(self):
        h = Harness()
        for w in ("w1", "w2", "w3"):
            h.fwd.resolve(b"k", QUESTION, 0, w)
        self.assertEqual(len(h.transports[0].sent), 1)
        h.transports[0].answer()
        self.assertEqual(h.results[0][0].waiters, ["w1", "w2", "w3"])
        self.assertEqual(h.fwd.coalesced, 2)

    def test_timeout_fails_over_in_order(self):
        h = Harness(3)
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.clock.advance(0.9)
        self.assertEqual(len(h.transports[1].sent), 0)
        h.clock.advance(0.2)
        self.assertEqual(h.transports[0].cancelled, h.transports[0].sent)
        self.assertEqual(len(h.transports[1].sent), 1)
        h.transports[1].answer()
        self.assertEqual(h.results[0][2].text, "127.0.0.1:1001")
        self.assertEqual(h.fwd.upstreams[0].stats.errors, {"timeout": 1})

    def test_late_answer_after_failover_is_ignored(self):
        h = Harness()
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.clock.advance(1.1)
        h.transports[0].answer(0)
        self.assertEqual(h.results, [])
        h.transports[1].answer()
        self.assertEqual(len(h.results), 1)

    def test_servfail_and_refused_fail_over(self):
        for rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
            h = Harness()
            h.fwd.resolve(b"k", QUESTION, 0, "w")
            h.transports[0].answer(rcode=rcode)
            self.assertEqual(len(h.transports[1].sent), 1)
            h.transports[1].answer()
            self.assertEqual(h.results[0][2].text, "127.0.0.1:1001")

    def test_everything_failing_reports_none(self):
        h = Harness()
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.transports[0].answer(rcode=dns.rcode.SERVFAIL)
        h.transports[1].sent[0].failed("network")
        [(inflight, answer, up)] = h.results
        self.assertIsNone(answer)
        self.assertEqual(h.fwd.inflight, {})

    def test_unhealthy_upstream_is_skipped_then_retried(self):
        h = Harness()
        for i in range(DOWN_AFTER):
            h.fwd.resolve(b"k%d" % i, QUESTION, 0, "w")
            h.clock.advance(1.1)
            h.transports[1].answer()
        self.assertFalse(h.fwd.upstreams[0].healthy(h.clock.seconds()))
        self.assertFalse(h.fwd.upstreams[0].stats.healthy)
        before = len(h.transports[0].sent)
        h.fwd.resolve(b"next", QUESTION, 0, "w")
        self.assertEqual(len(h.transports[0].sent), before)  # skipped
        h.transports[1].answer()
        h.clock.advance(2.1)  # back-off over: tried first again
        h.fwd.resolve(b"later", QUESTION, 0, "w")
        self.assertEqual(len(h.transports[0].sent), before + 1)
        h.transports[0].answer()
        self.assertTrue(h.fwd.upstreams[0].healthy(h.clock.seconds()))
        self.assertEqual(h.fwd.upstreams[0].fails, 0)

    def test_all_down_still_tries(self):
        h = Harness(1)
        for i in range(DOWN_AFTER + 1):
            h.fwd.resolve(b"k%d" % i, QUESTION, 0, "w")
            h.clock.advance(1.1)
        self.assertEqual(len(h.transports[0].sent), DOWN_AFTER + 1)

    def test_a_long_outage_does_not_stop_the_forwarder(self):
        """
        The only upstream is down for thousands of queries (the internet
        link is down for a while): each one fails, the back-off stays at
        its maximum, and when the upstream answers again so does the
        forwarder (timeouts are still swept, nothing is stuck in flight).
        """
        h = Harness(1)
        up = h.fwd.upstreams[0]
        for i in range(2100):
            h.fwd.resolve(b"k%d" % i, QUESTION, 0, "w")
            h.clock.advance(1.1)
        self.assertEqual(up.stats.errors, {"timeout": 2100})
        self.assertEqual(len(h.results), 2100)
        self.assertEqual(h.fwd.inflight, {})
        self.assertLessEqual(up.down_until - h.clock.seconds(), 60.0)
        h.fwd.resolve(b"back", QUESTION, 0, "w")
        h.transports[0].answer()
        self.assertIsNotNone(h.results[-1][1])
        self.assertTrue(up.healthy(h.clock.seconds()))
        self.assertEqual(up.fails, 0)

    def test_a_failing_timeout_does_not_stop_the_sweep(self):
        """
        A bug in handling one timeout is logged and that query answered
        SERVFAIL; the other queries in flight still time out and fail
        over, and the sweep goes on.
        """
        h = Harness()
        broken = h.transports[0]

        def cancel(attempt):
            if attempt.inflight.key == b"bad":
                raise RuntimeError("bug")

        broken.cancel = cancel
        h.fwd.resolve(b"bad", QUESTION, 0, "w1")
        h.fwd.resolve(b"good", QUESTION, 0, "w2")
        h.clock.advance(1.1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [(inflight, answer, up)] = h.results
        self.assertEqual((inflight.key, answer), (b"bad", None))
        self.assertEqual([a.inflight.key for a in h.transports[1].sent], [b"good"])
        h.transports[1].answer()
        self.assertEqual(h.fwd.inflight, {})
        h.fwd.resolve(b"later", QUESTION, 0, "w3")
        h.clock.advance(1.1)
        self.assertEqual(h.transports[1].sent[-1].inflight.key, b"later")

    def test_truncated_udp_answer_is_retried_over_tcp(self):
        h = Harness(with_tcp=True)
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.transports[0].answer(tc=True)
        self.assertEqual(len(h.tcps[0].sent), 1)
        h.tcps[0].answer()
        self.assertEqual(h.results[0][1].counts, (1, 0, 0))

    def test_answer_truncated_over_tcp_fails_over(self):
        # Truncated again over TCP (or over a TCP/TLS/HTTPS upstream): incomplete,
        # so it must not become the answer (it was cached as complete).
        h = Harness(with_tcp=True)
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.transports[0].answer(tc=True)
        h.tcps[0].answer(tc=True)
        self.assertEqual(h.results, [])
        self.assertEqual(h.fwd.upstreams[0].stats.errors, {"truncated": 1})
        self.assertEqual(len(h.transports[1].sent), 1)
        h.transports[1].answer()
        self.assertEqual(h.results[0][1].counts, (1, 0, 0))
        h = Harness(n=1)  # a tcp:// upstream: no TCP retry of its own
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.transports[0].answer(tc=True)
        self.assertIsNone(h.results[0][1])  # SERVFAIL (or a stale answer), not cached

    def test_malformed_answer_fails_over(self):
        h = Harness()
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        attempt = h.transports[0].sent[0]
        attempt.answered(b"\x12\x34\x81\x80" + b"\x00" * 8 + QUESTION, 12 + len(QUESTION))
        self.assertEqual(h.fwd.upstreams[0].stats.errors, {"malformed": 1})
        self.assertEqual(len(h.transports[1].sent), 1)

    def test_new_upstreams_close_the_old(self):
        h = Harness()
        h.fwd.set_upstreams([])
        self.assertTrue(all(t.closed for t in h.transports))
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        self.assertIsNone(h.results[0][1])


class CacheTests(SynchronousTestCase):
    def entry(self, ttl=60):
        wire = answer_wire(b"\x00\x01", ttl=ttl)
        return parse_response(wire, 12 + len(QUESTION))

    def test_fresh_until_ttl(self):
        c = Cache()
        c.put(b"k", self.entry(60), 100.0)
        self.assertIsNotNone(c.get(b"k", 159.9))
        self.assertIsNone(c.get(b"k", 160.0))

    def test_zero_ttl_not_cached(self):
        c = Cache()
        c.put(b"k", self.entry(0), 100.0)
        self.assertEqual(len(c), 0)

    def test_lru_bound(self):
        c = Cache(size=2)
        c.put(b"a", self.entry(), 0)
        c.put(b"b", self.entry(), 0)
        c.get(b"a", 1)  # a is now most recent
        c.put(b"c", self.entry(), 1)
        self.assertIsNone(c.get(b"b", 1))
        self.assertIsNotNone(c.get(b"a", 1))
        self.assertEqual(c.evictions, 1)
        c.configure(1, 0, 86400, 3600, True)
        self.assertEqual(len(c), 1)

    def big_entry(self, size=60000):
        """An answer of ``size`` bytes of TXT records (a hostile domain's server)."""
        q = dns.message.from_wire(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                  + QUESTION)
        r = dns.message.make_response(q)
        strings = " ".join('"%s"' % ("x" * 250) for _ in range(size // 2550))
        for i in range(10):
            r.answer.append(dns.rrset.from_text(f"t{i}.example.test.", 60, "IN", "TXT", strings))
        return parse_response(r.to_wire(), 12 + len(QUESTION))

    def test_bounded_by_bytes(self):
        # 2000 answers of ~60 KB fit the default entry count (20000) but
        # would hold ~240 MB: the byte bound evicts the oldest instead.
        c = Cache(size=20000)
        entry = self.big_entry()
        self.assertGreater(len(entry.body), 55000)
        for i in range(2000):
            c.put(b"k%d" % i, entry, 0)
        self.assertLessEqual(len(c), MAX_BYTES // (2 * len(entry.body)))
        self.assertLessEqual(c.bytes, MAX_BYTES)
        self.assertEqual(c.evictions, 2000 - len(c))
        self.assertIsNotNone(c.get(b"k1999", 1))  # the newest are kept
        self.assertIsNone(c.get(b"k0", 1))

    def test_byte_count_follows_every_removal(self):
        c = Cache(size=10, serve_stale=False, max_bytes=100000)
        small, big = self.entry(10), self.big_entry(30000)
        c.put(b"a", small, 0)
        c.put(b"b", big, 0)
        self.assertEqual(c.bytes, cost(b"a", small) + cost(b"b", big))
        c.put(b"b", self.entry(10), 0)  # replaced
        self.assertEqual(c.bytes, cost(b"a", small) + cost(b"b", small))
        self.assertIsNone(c.get(b"a", 20))  # expired: removed
        self.assertEqual(c.bytes, cost(b"b", small))
        c.put(b"c", self.big_entry(60000), 20)  # more than the whole budget: not cached
        self.assertIsNone(c.get(b"c", 20))
        self.assertEqual(c.bytes, cost(b"b", small))
        c.configure(0, 0, 86400, 3600, False)
        self.assertEqual((len(c), c.bytes), (0, 0))
        c.configure(10, 0, 86400, 3600, False)
        c.put(b"d", small, 30)
        c.flush()
        self.assertEqual(c.bytes, 0)

    def test_serve_stale(self):
        c = Cache(serve_stale=True)
        c.put(b"k", self.entry(10), 0)
        self.assertIsNone(c.get(b"k", 20))
        self.assertIsNotNone(c.stale(b"k", 20))
        self.assertIsNone(c.stale(b"k", 10 + 86400 + 1))
        off = Cache(serve_stale=False)
        off.put(b"k", self.entry(10), 0)
        self.assertIsNone(off.get(b"k", 20))
        self.assertIsNone(off.stale(b"k", 20))
        self.assertEqual(len(off), 0)
