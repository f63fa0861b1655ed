"""
The fast path must answer exactly like the general pipeline: same bytes,
same query-log rows, same counters — for hits, blocks and misses, with
and without EDNS, DO/CD/AD/RD, truncation, TCP.
"""

import itertools

import dns.edns
import dns.flags
import dns.message
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import ALLOW, PASS, Decision
from sentinel.dns.fastpath import FastPath
from tests.dns.fakes import CLIENT, FakePolicy, FakePort, Harness, block

POLICY = {
    "ads.example.": block("nxdomain", 10),
    "null.example.": block("null", 20),
    "kid.example.": block("refused", 5, reason="client:2:paused"),
    "ok.example.": Decision(ALLOW, reason="rule:3"),
    "shadow.example.": Decision(PASS, shadow="blocklist:4"),
}
NAMES = ["www.example", "WwW.ExAmPlE", "big.example", "ads.example", "null.example",
         "kid.example", "ok.example", "shadow.example"]


def variants():
    for name, rdtype, edns, do, cd, rd, tcp in itertools.product(
            NAMES, ["A", "AAAA", "TXT"], [False, 0], [False, True], [False, True],
            [True, False], [False, True]):
        if do and edns is False:
            continue
        for payload in ([512, 700, 4096] if edns is not False else [None]):
            yield name, rdtype, edns, do, cd, rd, tcp, payload


def make(name, rdtype, edns, do, cd, rd, payload):
    q = dns.message.make_query(name, rdtype, use_edns=edns, payload=payload or 1232,
                               want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    if not rd:
        q.flags &= ~dns.flags.RD
    q.id = 4242
    return q.to_wire()


class Pair:
    def __init__(self):
        self.general = Harness(FakePolicy(POLICY))
        self.fast = Harness(FakePolicy(POLICY))
        self.fastpath = FastPath(self.fast.engine)
        self.clock = 10000.0

    def send(self, wire, tcp):
        out = []
        for h, handle in ((self.general, self.general.engine.handle),
                          (self.fast, self.fastpath.handle)):
            port = FakePort(tcp=tcp)
            handle(wire, CLIENT, port, None)
            if not port.sent and h.transports[0].sent and not h.transports[0].sent[-1].done:
                attempt = h.transports[0].sent[-1]
                reply = dns.message.make_response(dns.message.from_wire(
                    b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + attempt.question))
                name = reply.question[0].name
                count = 30 if name.to_text().startswith("big") else 1
                for i in range(count):
                    reply.answer.append(dns.rrset.from_text(
                        name, 300, "IN", "TXT", f'"{i:02d}{"x" * 60}"'))
                attempt.answered(reply.to_wire(max_size=65535), 12 + len(attempt.question))
            out.append([d for d, _, _ in port.sent])
        return out

    def advance(self, seconds):
        for h in (self.general, self.fast):
            h.clock.advance(seconds)


class FastPathEquivalenceTests(SynchronousTestCase):
    def test_same_answers_logs_and_counters(self):
        pair = Pair()
        checked = 0
        for n, (name, rdtype, edns, do, cd, rd, tcp, payload) in enumerate(variants()):
            wire = make(name, rdtype, edns, do, cd, rd, payload)
            general, fast = pair.send(wire, tcp)
            self.assertEqual(general, fast, (name, rdtype, edns, do, cd, rd, tcp, payload))
            # The same bytes again with another ID: the fast path answers
            # from the query shape it remembered, and must still agree.
            general, fast = pair.send(b"\x10\x92" + wire[2:], tcp)
            self.assertEqual(general, fast, ("again", name, rdtype, edns, do, cd, rd, tcp))
            # CD copied from the query into every reply (RFC 4035 3.2.2): blocked,
            # forwarded, cached, truncated.
            self.assertEqual({bool(reply[3] & 0x10) for reply in fast}, {cd} if fast else set())
            checked += len(fast)
            if n % 50 == 0:
                pair.advance(1.5)  # TTLs count down in both
        self.assertGreater(checked, 500)
        rows = lambda h: [r[1:] for r in h.log.rows]  # noqa: E731
        self.assertEqual(rows(pair.general), rows(pair.fast))
        g, f = pair.general.engine.stats.snapshot(), pair.fast.engine.stats.snapshot()
        for key in ("queries", "queries_udp", "queries_tcp", "answered", "cache_hits",
                    "cache_misses", "decisions", "rcodes"):
            self.assertEqual(g[key], f[key], key)
        self.assertGreater(f["cache_hits"], 100)
        self.assertEqual(f["answered"], sum(f["rcodes"].values()))
        self.assertGreater(len(pair.fastpath._shapes), 100)

    def test_unusual_queries_take_the_general_path(self):
        pair = Pair()
        for wire in [b"\x00\x01\x02", make("www.example", "ANY", 0, False, False, True, 1232),
                     make("www.example", "A", 1, False, False, True, 1232),
                     make("www.example", "AXFR", False, False, False, True, None)]:
            general, fast = pair.send(wire, False)
            self.assertEqual(general, fast)
        public = FakePort()
        pair.fastpath.handle(make("www.example", "A", False, False, False, True, None),
                             ("8.8.8.8", 53), public, None)
        self.assertEqual((public.sent, public.dropped), ([], 1))

    def test_a_new_decision_for_the_same_query_bytes_changes_the_answer(self):
        # The fast path remembers blocked answers by query bytes; a policy
        # that now decides differently (another block mode, or no block)
        # must be answered from the new decision, as the general path does.
        pair = Pair()
        wire = make("ads.example", "A", 0, False, False, True, 1232)
        rcodes = []
        for decision in (block("nxdomain", 10), block("null", 20), block("null", 20),
                         Decision(ALLOW, reason="rule:3"), block("nxdomain", 10)):
            for h in (pair.general, pair.fast):
                h.policy.decisions["ads.example."] = decision
            general, fast = pair.send(wire, False)
            self.assertEqual(general, fast, decision)
            rcodes.append(dns.message.from_wire(fast[-1]).rcode())
        self.assertEqual(rcodes, [3, 0, 0, 0, 3])

    def test_long_queries_are_answered_but_not_remembered(self):
        # An OPT record may carry kilobytes of options: such queries get the
        # same answers, but the fast path's memos keep only short ones, so
        # a client cannot fill memory with them.
        pair = Pair()
        padding = dns.edns.GenericOption(12, b"\x00" * 3000)
        for name in ("www.example", "www.example", "ads.example", "ads.example"):
            for tcp in (False, True):
                q = dns.message.make_query(name, "A", use_edns=0, options=[padding])
                q.id = 77
                general, fast = pair.send(q.to_wire(max_size=65535), tcp)
                self.assertEqual(general, fast, (name, tcp))
                self.assertEqual(len(fast), 1)
        short = make("www.example", "A", 0, False, False, True, 1232)
        self.assertEqual(pair.send(short, False)[0], pair.send(short, False)[1])
        self.assertEqual([len(k) for k in pair.fastpath._shapes], [len(short) - 2])
        self.assertEqual(pair.fastpath._blocked, {})

    def test_blocked_answers_are_remembered_from_the_second_time(self):
        # Query bytes that come once (random names, a flood of new ones)
        # cost no blocked-answer memo entry; bytes that come again are
        # answered from it, with the same answers as the general path.
        pair = Pair()
        block_all = block("nxdomain", 10)
        for h in (pair.general, pair.fast):
            h.policy.default = block_all
        for i in range(300):
            general, fast = pair.send(make(f"n{i}.example", "A", 0, False, False, True, 1232),
                                      False)
            self.assertEqual(general, fast)
        self.assertEqual(pair.fastpath._blocked, {})
        self.assertGreater(len(pair.fastpath._shapes), 100)
        wire = make("n7.example", "A", 0, False, False, True, 1232)
        for qid in (b"\x00\x01", b"\x00\x02", b"\x00\x03"):
            general, fast = pair.send(qid + wire[2:], False)
            self.assertEqual(general, fast)
        self.assertEqual([k for k in pair.fastpath._blocked], [wire[2:]])
