"""Names that never leave the LAN (sentinel.dns.lan) and the pipeline around them."""

import dns.message
import dns.rrset
import dns.rcode
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import ALLOW, REWRITE, Decision
from sentinel.dns.forwarder import Upstream
from sentinel.dns.lan import (
    INVALID, LAN_DOMAIN, LOCALHOST, PRIVATE_REVERSE, PRIVATE_REVERSE_ZONES, SINGLE_LABEL, LanNames,
)
from sentinel.dns.runtime import DnsRuntime
from sentinel.dns.settings import SettingsError, from_data
from sentinel.dns.upstreamspec import parse_upstream
from sentinel.dns.wire import name_from_text
from tests.dns.fakes import FakePolicy, Harness, block
from tests.dns.test_cache_forwarder import FakeTransport


def classify(name, qtype=1, **kw):
    return LanNames(**kw).classify(name_from_text(name), qtype)


class ClassifyTests(SynchronousTestCase):
    def test_localhost_and_invalid(self):
        self.assertEqual(classify("localhost"), (LOCALHOST, 0))
        self.assertEqual(classify("a.b.localhost"), (LOCALHOST, 4))
        self.assertEqual(classify("invalid", 6), (INVALID, 0))
        self.assertEqual(classify("probe.sentinel.invalid"), (INVALID, 15))
        for name in ("localhost.example", "xlocalhost", "notinvalid", "test", "www.test"):
            self.assertEqual(classify(name, forward_single_label=True), None, name)
        # "localhost" inside a label is not the label "localhost"
        self.assertIsNone(LanNames(forward_single_label=True).classify(
            b"\x0ba\x09localhost\x00", 1))

    def test_private_reverse_zones(self):
        cases = {
            "4.3.2.10.in-addr.arpa": 6, "10.in-addr.arpa": 0, "1.0.16.172.in-addr.arpa": 4,
            "1.0.31.172.in-addr.arpa": 4, "9.168.192.in-addr.arpa": 2,
            "1.0.0.127.in-addr.arpa": 6, "1.1.254.169.in-addr.arpa": 4,
            "1.1.64.100.in-addr.arpa": 4, "1.1.127.100.in-addr.arpa": 4,
            "0.0.0.0.in-addr.arpa": 6, "9.2.0.192.in-addr.arpa": 2,
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa": 0,
            "1.0.0.0.d.f.ip6.arpa": 8, "d.f.ip6.arpa": 0, "0.8.e.f.ip6.arpa": 2,
            "0.b.e.f.ip6.arpa": 2, "1.8.b.d.0.1.0.0.2.ip6.arpa": 2,
        }
        for name, apex in cases.items():
            self.assertEqual(classify(name, 12), (PRIVATE_REVERSE, apex), name)
            self.assertIsNone(classify(name, 12, forward_private_reverse=True), name)
        for name in ("8.8.8.8.in-addr.arpa", "1.0.15.172.in-addr.arpa",
                     "1.0.32.172.in-addr.arpa", "1.1.63.100.in-addr.arpa",
                     "1.1.128.100.in-addr.arpa", "172.in-addr.arpa", "in-addr.arpa",
                     "1.0.0.0.c.f.ip6.arpa", "1.0.0.0.c.e.f.ip6.arpa", "8.b.d.0.1.ip6.arpa",
                     "0.1.0.0.2.ip6.arpa", "ip6.arpa", "10.in-addr.arpa.example"):
            self.assertIsNone(classify(name, 12), name)
        self.assertEqual(len(set(PRIVATE_REVERSE_ZONES)), 97)

    def test_single_label(self):
        self.assertEqual(classify("printer"), (SINGLE_LABEL, 0))
        self.assertEqual(classify("printer", 28), (SINGLE_LABEL, 0))
        self.assertIsNone(classify("printer", forward_single_label=True))
        for qtype in (2, 6, 43, 48):  # NS, SOA, DS, DNSKEY of a top-level domain
            self.assertIsNone(classify("com", qtype))
        self.assertIsNone(classify("."))
        self.assertIsNone(classify("printer.lan"))

    def test_lan_domains(self):
        self.assertEqual(classify("nas.home.arpa"), (LAN_DOMAIN, 4))
        self.assertEqual(classify("home.arpa", 6), (LAN_DOMAIN, 0))
        self.assertEqual(classify("a.b.office.local", 28), (LAN_DOMAIN, 11))
        for name in ("nas.myhome.arpa", "home.arpa.example", "x.notlocal", "local.example",
                     "arpa"):
            self.assertIsNone(classify(name, 6), name)


class PipelineTests(SynchronousTestCase):
    def answered(self, h, name, rdtype="A", **kw):
        h.ask(name, rdtype, **kw)
        self.assertEqual(len(h.port.sent), 1, f"{name}: no local answer")
        return h.reply()

    def assertNothingForwarded(self, h):
        self.assertEqual([t.sent for t in h.transports], [[]])

    def test_localhost(self):
        h = Harness()
        r = self.answered(h, "LocalHost", use_edns=0)
        self.assertEqual(r.rcode(), dns.rcode.NOERROR)
        self.assertEqual([rr.to_text() for rr in r.answer[0]], ["127.0.0.1"])
        self.assertEqual(r.answer[0].name.to_text(), "LocalHost.")  # the client's spelling
        self.assertEqual(r.edns, 0)
        r = self.answered(h, "db.localhost", "AAAA")
        self.assertEqual(r.answer[0][0].to_text(), "::1")
        r = self.answered(h, "db.localhost", "MX")
        self.assertEqual((r.rcode(), r.answer), (dns.rcode.NOERROR, []))
        self.assertEqual(r.authority[0].name.to_text(), "localhost.")
        self.assertNothingForwarded(h)
        self.assertEqual((h.log.last()["decision"], h.log.last()["reason"]),
                         ("local", "local:localhost"))

    def test_negative_answers_carry_the_zone_soa(self):
        h = Harness()
        for name, zone in (("4.3.2.10.in-addr.arpa", "10.in-addr.arpa."),
                           ("1.0.0.0.d.f.ip6.arpa", "d.f.ip6.arpa."),
                           ("x.invalid", "invalid."), ("printer", "printer.")):
            r = self.answered(h, name, "PTR")
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN, name)
            soa = r.authority[0]
            self.assertEqual((soa.rdtype, soa.name.to_text()), (dns.rdatatype.SOA, zone))
            self.assertEqual((soa.ttl, soa[0].minimum), (300, 300))
        r = self.answered(h, "10.in-addr.arpa", "SOA")  # the (empty) zone exists
        self.assertEqual((r.rcode(), r.answer[0].rdtype), (0, dns.rdatatype.SOA))
        r = self.answered(h, "10.in-addr.arpa", "NS")
        self.assertEqual((r.rcode(), r.answer, r.authority[0].rdtype),
                         (0, [], dns.rdatatype.SOA))
        self.assertNothingForwarded(h)

    def test_public_names_still_forwarded(self):
        h = Harness()
        for name, rdtype in (("8.8.8.8.in-addr.arpa", "PTR"), ("www.example", "A"),
                             ("com", "DS"), ("www.test", "A")):
            h.ask(name, rdtype)
        self.assertEqual(len(h.transports[0].sent), 4)

    def test_policy_first(self):
        h = Harness(FakePolicy({
            "printer.": Decision(REWRITE, reason="rewrite:1", answers=((1, "192.168.1.9"),)),
            "ads.localhost.": block(),
            "9.1.168.192.in-addr.arpa.": Decision(REWRITE, reason="rewrite:2",
                                                  answers=((5, "nas.home."),)),
            "nas.home.": Decision(REWRITE, answers=((1, "192.168.1.9"),)),
            "fine.": Decision(ALLOW, reason="rule:3"),
        }))
        self.assertEqual(self.answered(h, "printer").answer[0][0].to_text(), "192.168.1.9")
        self.assertEqual(h.log.last()["decision"], "rewritten")
        r = self.answered(h, "ads.localhost")
        self.assertEqual(h.log.last()["decision"], "blocked")
        r = self.answered(h, "9.1.168.192.in-addr.arpa", "A")
        self.assertEqual(r.answer[-1][0].to_text(), "192.168.1.9")
        # an allow rule does not send a LAN-only name upstream
        self.assertEqual(self.answered(h, "fine").rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(h.log.last()["reason"], "local:single-label")
        self.assertNothingForwarded(h)

    def test_rewrite_chased_to_localhost_stays_here(self):
        h = Harness(FakePolicy({"dev.home.": Decision(
            REWRITE, reason="rewrite:4", answers=((5, "app.localhost."),))}))
        r = self.answered(h, "dev.home", "A")
        self.assertEqual([rrset.rdtype for rrset in r.answer],
                         [dns.rdatatype.CNAME, dns.rdatatype.A])
        self.assertEqual(r.answer[1][0].to_text(), "127.0.0.1")
        self.assertNothingForwarded(h)

    def test_settings_switch_forwarding_and_flush_the_cache(self):
        h = Harness()
        runtime = DnsRuntime(h.clock, h.engine, None, ("127.0.0.1:53000",), 5353)
        runtime.effective_upstreams = ("127.0.0.1:53000",)  # keep the harness's fakes
        runtime.apply(from_data({"forward_single_label": True,
                                 "forward_private_reverse": True}))
        h.ask("printer", "A")
        h.ask("4.3.2.10.in-addr.arpa", "PTR")
        self.assertEqual(len(h.transports[0].sent), 2)
        h.upstream_answers(("printer.", 300, "IN", "A", "198.18.0.9"), which=0)
        self.assertEqual(len(h.engine.cache), 1)
        runtime.apply(from_data({"forward_private_reverse": True}))
        self.assertEqual(len(h.engine.cache), 0)  # the forwarded answer must not be served
        self.assertEqual(self.answered(h, "printer").rcode(), dns.rcode.NXDOMAIN)


class LanUpstreamTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(FakePolicy({"dev.home.": Decision(
            REWRITE, reason="rewrite:4", answers=((5, "nas"),))}))
        self.router = FakeTransport()
        engine = self.h.engine
        engine.lan_forwarder.set_upstreams([Upstream(
            parse_upstream("127.0.0.1:54000"), self.router,
            engine.stats.upstream("127.0.0.1:54000"))])

    def router_answers(self, *rrs, rcode=0):
        attempt = self.router.sent[-1]
        q = dns.message.from_wire(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                  + attempt.question)
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        for rr in rrs:
            r.answer.append(dns.rrset.from_text(*rr))
        attempt.answered(r.to_wire(), 12 + len(attempt.question))

    def test_private_reverse_and_single_labels_go_to_the_lan_only(self):
        h = self.h
        h.ask("9.1.168.192.in-addr.arpa", "PTR")
        self.router_answers(("9.1.168.192.in-addr.arpa.", 60, "IN", "PTR", "nas.lan."))
        self.assertEqual(h.reply().answer[0][0].to_text(), "nas.lan.")
        self.assertEqual(h.log.last()["upstream"], "127.0.0.1:54000")
        h.ask("printer", "A")
        self.router_answers(("printer.", 60, "IN", "A", "192.168.1.7"))
        self.assertEqual(h.reply().answer[0][0].to_text(), "192.168.1.7")
        h.ask("printer", "A")  # cached like any answer
        self.assertEqual(h.reply().answer[0][0].to_text(), "192.168.1.7")
        self.assertEqual(len(self.router.sent), 2)
        # a rewrite's CNAME target that is a single label: the router too
        h.ask("dev.home", "A")
        self.router_answers(("nas.", 60, "IN", "A", "192.168.1.8"))
        self.assertEqual(h.reply().answer[-1][0].to_text(), "192.168.1.8")
        # localhost stays here; public names go to the public upstreams
        h.ask("localhost", "A")
        self.assertEqual(h.reply().answer[0][0].to_text(), "127.0.0.1")
        h.ask("www.example", "A")
        self.assertEqual((len(self.router.sent), len(h.transports[0].sent)), (3, 1))
        self.assertEqual(h.transports[0].sent[0].question[:4], b"\x03www")

    def test_lan_domains_go_to_the_lan_only(self):
        h = self.h
        h.ask("nas.home.arpa", "A")
        self.router_answers(("nas.home.arpa.", 60, "IN", "A", "192.168.1.8"))
        self.assertEqual(h.reply().answer[0][0].to_text(), "192.168.1.8")
        h.ask("dc1.corp.local", "AAAA")
        self.router_answers(rcode=dns.rcode.NXDOMAIN)
        self.assertEqual(h.reply().rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(len(self.router.sent), 2)
        self.assertEqual(h.transports[0].sent, [])

    def test_lan_domains_forwarded_as_usual_without_lan_upstreams(self):
        h = Harness()
        h.ask("nas.home.arpa", "A")
        h.upstream_answers(("nas.home.arpa.", 60, "IN", "A", "192.168.1.8"), which=0)
        self.assertEqual(h.reply().answer[0][0].to_text(), "192.168.1.8")

    def test_router_failing_is_servfail_not_a_public_upstream(self):
        h = self.h
        h.ask("printer", "A")
        self.router.sent[-1].failed("timeout")
        self.assertEqual(h.reply().rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(h.transports[0].sent, [])

    def test_setting_is_validated(self):
        self.assertEqual(from_data({"lan_upstreams": ["192.168.1.1"]}).lan_upstreams,
                         ("192.168.1.1",))
        with self.assertRaises(SettingsError) as e:
            from_data({"lan_upstreams": ["router"]})
        self.assertEqual(e.exception.field, "lan_upstreams.0")
