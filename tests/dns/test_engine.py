"""The query pipeline with a fake policy, fake ports and a Clock."""

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import ALLOW, PASS, REWRITE, Decision
from sentinel.dns.engine import PROBE_NAME
from sentinel.dns.wire import name_from_text
from tests.dns.fakes import CLIENT, FakePolicy, FakePort, Harness, block


def ede_codes(message):
    return [o.code for o in message.options if o.otype == dns.edns.EDE]


class BlockTests(SynchronousTestCase):
    def test_nxdomain_with_soa_and_ede(self):
        h = Harness(FakePolicy({"ads.example.": block("nxdomain", ttl=42)}))
        h.ask("Ads.Example", "A", use_edns=0)
        r = h.reply()
        self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(r.question[0].name.to_text(), "Ads.Example.")
        [soa] = r.authority
        self.assertEqual(soa.rdtype, dns.rdatatype.SOA)
        self.assertEqual((soa.ttl, soa[0].minimum), (42, 42))
        self.assertEqual(ede_codes(r), [15])
        self.assertEqual(h.transports[0].sent, [])  # never forwarded
        row = h.log.last()
        self.assertEqual((row["decision"], row["reason"], row["client_name"], row["rcode"]),
                         ("blocked", "blocklist:1", "laptop", 3))
        self.assertEqual(row["qname"], name_from_text("ads.example"))

    def test_null_mode(self):
        h = Harness(FakePolicy(default=block("null", ttl=7)))
        h.ask("x.example", "A")
        self.assertEqual([rr.to_text() for rr in h.reply().answer[0]], ["0.0.0.0"])
        self.assertEqual(h.reply().answer[0].ttl, 7)
        h.ask("x.example", "AAAA")
        self.assertEqual([rr.to_text() for rr in h.reply().answer[0]], ["::"])
        h.ask("x.example", "MX")
        self.assertEqual((h.reply().rcode(), h.reply().answer), (0, []))
        self.assertEqual(h.reply().authority[0].rdtype, dns.rdatatype.SOA)

    def test_refused_mode_and_client_policy_ede(self):
        h = Harness(FakePolicy(default=block("refused", reason="client:3:paused")))
        h.ask("x.example", "A", use_edns=0)
        self.assertEqual(h.reply().rcode(), dns.rcode.REFUSED)
        self.assertEqual(ede_codes(h.reply()), [17])
        h.ask("x.example", "A", use_edns=False)
        self.assertEqual(h.reply().edns, -1)

    def test_policy_crash_answers_unfiltered(self):
        class Broken:
            def decide(self, *a):
                raise RuntimeError("boom")

        h = Harness(Broken())
        h.ask("www.example", "A")
        self.assertEqual(len(h.transports[0].sent), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class CacheAndForwardTests(SynchronousTestCase):
    A = ("www.example.", 300, "IN", "A", "198.18.0.1")

    def test_miss_forwarded_then_hit(self):
        h = Harness()
        h.ask("www.example", "A")
        self.assertEqual(h.port.sent, [])
        h.upstream_answers(self.A)
        self.assertEqual([rr.to_text() for rr in h.reply().answer[0]], ["198.18.0.1"])
        row = h.log.last()
        self.assertEqual((row["decision"], row["upstream"]), ("forwarded", "127.0.0.1:53000"))
        h.clock.advance(100)
        h.ask("WWW.EXAMPLE", "A")
        self.assertEqual(h.reply().answer[0].ttl, 200)
        self.assertEqual(h.log.last()["decision"], "cached")
        self.assertEqual(len(h.transports[0].sent), 1)
        self.assertEqual(h.engine.stats.cache_hits, 1)

    def test_allow_and_shadow_are_logged_as_such(self):
        h = Harness(FakePolicy({
            "ok.example.": Decision(ALLOW, reason="rule:4"),
            "shadow.example.": Decision(PASS, shadow="blocklist:9")}))
        h.ask("ok.example")
        h.upstream_answers(("ok.example.", 300, "IN", "A", "198.18.0.1"))
        self.assertEqual((h.log.last()["decision"], h.log.last()["reason"]),
                         ("allowed", "rule:4"))
        h.ask("shadow.example")
        h.upstream_answers(("shadow.example.", 300, "IN", "A", "198.18.0.1"))
        self.assertEqual((h.log.last()["decision"], h.log.last()["reason"]),
                         ("shadow-blocked", "blocklist:9"))
        self.assertEqual(len(h.port.sent), 1)

    def test_coalesced_clients_each_get_their_id_and_case(self):
        h = Harness()
        q1 = h.ask("www.example", "A")
        other = FakePort()
        q2 = h.ask("WWW.example", "A", port=other)
        self.assertEqual(len(h.transports[0].sent), 1)
        h.upstream_answers(self.A)
        self.assertEqual(h.reply().id, q1.id)
        self.assertEqual(other.last().id, q2.id)
        self.assertEqual(other.last().question[0].name.to_text(), "WWW.example.")

    def test_all_upstreams_failing_serves_stale_or_servfail(self):
        h = Harness()
        h.ask("www.example", "A", use_edns=0)
        h.upstream_answers(("www.example.", 10, "IN", "A", "198.18.0.1"))
        h.clock.advance(20)
        h.ask("www.example", "A", use_edns=0)
        h.upstream_answers(rcode=dns.rcode.SERVFAIL)
        r = h.reply()
        self.assertEqual((r.rcode(), r.answer[0].ttl), (0, 30))
        self.assertEqual(ede_codes(r), [3])
        h.engine.cache.serve_stale = False
        h.ask("other.example", "A", use_edns=0)
        h.transports[0].sent[-1].failed("network")
        self.assertEqual(h.reply().rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(ede_codes(h.reply()), [22])

    def test_any_gets_a_minimal_answer(self):
        h = Harness()
        h.ask("www.example", "ANY")
        r = h.reply()
        self.assertEqual(r.answer[0].rdtype, dns.rdatatype.HINFO)
        self.assertEqual(r.answer[0][0].cpu, b"RFC8482")
        self.assertEqual(h.transports[0].sent, [])

    def test_zone_transfers_and_other_classes_refused(self):
        h = Harness()
        h.ask("example", "AXFR")
        self.assertEqual(h.reply().rcode(), dns.rcode.REFUSED)
        h.ask("version.bind", "TXT", rdclass="CH")
        self.assertEqual(h.reply().rcode(), dns.rcode.REFUSED)

    def test_probe_is_answered_locally_and_not_logged(self):
        h = Harness()
        wire = b"\x00\x07\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + PROBE_NAME + \
            b"\x00\x10\x00\x03"
        h.engine.handle(wire, ("127.0.0.1", 5555), h.port, None)
        self.assertEqual(h.reply().rcode(), 0)
        self.assertEqual(h.log.rows, [])
        self.assertEqual(h.engine.stats.snapshot()["queries"], 0)

    def test_formerr_badvers_notimp(self):
        h = Harness()
        good = dns.message.make_query("www.example", "A").to_wire()
        h.engine.handle(good[:-1], CLIENT, h.port, None)
        self.assertEqual(h.reply().rcode(), dns.rcode.FORMERR)
        h.ask("www.example", "A", use_edns=1)
        self.assertEqual(h.reply().rcode(), dns.rcode.BADVERS)
        notify = bytearray(good)
        notify[2] = 0x20
        h.engine.handle(bytes(notify), CLIENT, h.port, None)
        self.assertEqual(h.reply().rcode(), dns.rcode.NOTIMP)
        before = len(h.port.sent)
        h.engine.handle(b"\x00\x01\x02", CLIENT, h.port, None)
        self.assertEqual(len(h.port.sent), before)


class RewriteTests(SynchronousTestCase):
    def test_address_rewrite(self):
        h = Harness(FakePolicy({"nas.home.": Decision(
            REWRITE, reason="rewrite:1", ttl=60,
            answers=((1, "192.168.1.10"), (28, "fd00::10")))}))
        h.ask("NAS.home", "A", use_edns=0)
        r = h.reply()
        self.assertEqual([rr.to_text() for rr in r.answer[0]], ["192.168.1.10"])
        self.assertEqual((r.answer[0].ttl, r.answer[0].name.to_text()), (60, "NAS.home."))
        self.assertEqual(r.edns, 0)
        self.assertEqual(h.log.last()["decision"], "rewritten")
        h.ask("nas.home", "MX")  # no MX rewrite: NODATA with SOA
        self.assertEqual((h.reply().rcode(), h.reply().answer), (0, []))
        self.assertEqual(h.reply().authority[0].rdtype, dns.rdatatype.SOA)

    def test_cname_rewrite_is_chased_upstream(self):
        h = Harness(FakePolicy({"tv.home.": Decision(
            REWRITE, reason="rewrite:2", answers=((5, "cdn.example."),))}))
        h.ask("tv.home", "A")
        self.assertEqual(h.port.sent, [])
        h.upstream_answers(("cdn.example.", 300, "IN", "A", "198.18.0.7"))
        r = h.reply()
        self.assertEqual([rrset.rdtype for rrset in r.answer],
                         [dns.rdatatype.CNAME, dns.rdatatype.A])
        self.assertEqual(r.answer[1][0].to_text(), "198.18.0.7")
        h.ask("tv.home", "CNAME")
        self.assertEqual(h.reply().answer[0][0].to_text(), "cdn.example.")

    def test_cname_to_rewritten_or_blocked_target(self):
        h = Harness(FakePolicy({
            "a.home.": Decision(REWRITE, answers=((5, "b.home."),)),
            "b.home.": Decision(REWRITE, answers=((1, "192.168.1.5"),)),
            "c.home.": Decision(REWRITE, answers=((5, "ads.example."),)),
            "ads.example.": block(),
            "loop.home.": Decision(REWRITE, answers=((5, "loop.home."),)),
        }))
        h.ask("a.home")
        self.assertEqual([str(rrset[0]) for rrset in h.reply().answer],
                         ["b.home.", "192.168.1.5"])
        h.ask("c.home")
        self.assertEqual(h.reply().rcode(), dns.rcode.NXDOMAIN)
        h.ask("loop.home")
        self.assertEqual(h.reply().rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(h.transports[0].sent, [])


class AccessTests(SynchronousTestCase):
    def test_public_sources_are_dropped(self):
        h = Harness()
        h.ask("www.example", client=("8.8.8.8", 5353))
        self.assertEqual((h.port.sent, h.port.dropped), ([], 1))
        self.assertEqual(h.engine.stats.dropped, {"acl": 1})
        self.assertEqual(h.transports[0].sent, [])

    def test_rate_limit_drops_and_slips_over_udp_refuses_over_tcp(self):
        h = Harness(FakePolicy(default=block()))
        h.engine.access.configure(["192.168.0.0/16"], rate=10, burst=10, exempt=[])
        for _ in range(10):
            h.ask("x.example")
            self.assertEqual(h.reply().rcode(), dns.rcode.NXDOMAIN)
        replies = []
        for _ in range(10):
            h.ask("x.example")
            replies.append(h.port.last() if h.port.sent else None)
        slipped = [r for r in replies if r is not None]
        self.assertEqual(len(slipped), 5)
        self.assertTrue(all(r.flags & dns.flags.TC and not r.answer for r in slipped))
        tcp = FakePort(tcp=True)
        h.ask("x.example", port=tcp)
        self.assertEqual(tcp.last().rcode(), dns.rcode.REFUSED)
        h.clock.advance(1)  # refilled
        h.ask("x.example")
        self.assertEqual(h.reply().rcode(), dns.rcode.NXDOMAIN)

    def test_queries_from_our_own_upstream_sockets_are_refused(self):
        h = Harness()
        h.engine.loop_ports.add(40001)
        h.ask("www.example", client=("127.0.0.1", 40001))
        self.assertEqual(h.reply().rcode(), dns.rcode.REFUSED)
        self.assertEqual(h.engine.stats.dropped, {"loop": 1})
        h.ask("www.example", client=("192.168.1.9", 40001))  # another host: fine
        self.assertEqual(len(h.transports[0].sent), 1)


class WaiterFailureTests(SynchronousTestCase):
    def test_one_failing_waiter_does_not_cost_the_others_their_answer(self):
        """
        Clients waiting for the same upstream answer: answering one raises
        (a bug); the others still get the answer, and the failure is logged.
        """
        h = Harness()

        class BrokenPort(FakePort):
            def send(self, data, addr, cmsg):
                raise RuntimeError("bug")

        broken, good = BrokenPort(), FakePort()
        h.ask("www.example.test", port=broken)
        h.ask("www.example.test", port=good)
        h.ask("www.example.test", port=broken)
        h.upstream_answers(("www.example.test.", 60, "IN", "A", "198.18.0.1"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        reply = good.last()
        self.assertEqual(reply.answer[0][0].address, "198.18.0.1")


class CheckingDisabledTests(SynchronousTestCase):
    """RFC 4035 3.2.2: the CD bit of a query is copied into its reply, whoever answers."""

    def test_cd_copied_into_every_kind_of_reply(self):
        h = Harness(FakePolicy({
            "ads.example.": block("nxdomain"), "null.example.": block("null"),
            "home.example.": Decision(REWRITE, reason="rewrite:1",
                                      answers=((1, "192.168.1.5"),))}))
        for cd in (False, True):
            flags = dns.flags.RD | (dns.flags.CD if cd else 0)

            def replies(name, rdtype="A", **kw):
                h.ask(name, rdtype, flags=flags, **kw)
                return h.reply()

            seen = [
                replies("ads.example"), replies("null.example"), replies("null.example", "MX"),
                replies("home.example"), replies("localhost"), replies("printer"),
                replies("www.example", "ANY"), replies("www.example", "AXFR"),
                replies("www.example", use_edns=1),  # BADVERS
            ]
            h.ask(f"www{cd:d}.example", "A", flags=flags, use_edns=0)
            h.upstream_answers((f"www{cd:d}.example.", 300, "IN", "A", "198.18.0.1"))
            seen.append(h.reply())  # forwarded
            seen.append(replies(f"WWW{cd:d}.example", use_edns=0))  # cached
            h.ask(f"gone{cd:d}.example", "A", flags=flags)
            h.upstream_answers(rcode=dns.rcode.SERVFAIL)
            seen.append(h.reply())  # SERVFAIL, nothing stale
            self.assertEqual([bool(r.flags & dns.flags.CD) for r in seen], [cd] * len(seen))
            self.assertEqual([r.rcode() for r in seen],
                             [3, 0, 0, 0, 0, 3, 0, 5, 16, 0, 0, 2])
            wire = dns.message.make_query("x.example", "A", flags=flags).to_wire()
            h.engine.handle(wire[:4] + b"\x00\x00" + wire[6:], CLIENT, h.port, None)
            self.assertEqual(bool(h.port.last().flags & dns.flags.CD), cd)  # FORMERR
