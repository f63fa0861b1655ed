"""The byte-level query parser, response walker and answer rendering."""

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.answer import STALE_TTL, parse_response, truncated
from sentinel.dns.slowpath import NotImplementedOpcode, parse_unusual
from sentinel.dns.wire import (
    Garbage, Malformed, Unusual, answers_question, name_from_text, name_to_text, parse_query,
)


def make(name="www.Example.com", rdtype="A", **kw):
    return dns.message.make_query(name, rdtype, **kw).to_wire()


def response_for(wire, *answers, rcode=0, authority=(), edns=True, ad=False):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for rr in answers:
        r.answer.append(dns.rrset.from_text(*rr))
    for rr in authority:
        r.authority.append(dns.rrset.from_text(*rr))
    if not edns:
        r.use_edns(False)
    if ad:
        r.flags |= dns.flags.AD
    return r.to_wire(max_size=65535)


def qend(wire):
    return 12 + len(parse_query(wire).question)


class ParseQueryTests(SynchronousTestCase):
    def test_plain_query(self):
        wire = make(use_edns=False)
        q = parse_query(wire)
        self.assertEqual(q.id, wire[:2])
        self.assertEqual(q.qname, b"\x03www\x07example\x03com\x00")
        self.assertEqual(q.question, wire[12:])  # case as sent
        self.assertEqual((q.qtype, q.qclass, q.rd), (1, 1, 1))
        self.assertEqual((q.edns, q.do, q.udp_size), (False, 0, 512))

    def test_edns_size_and_do(self):
        q = parse_query(make(use_edns=0, payload=4096, want_dnssec=True))
        self.assertEqual((q.edns, q.do, q.udp_size), (True, 1, 1232))
        q = parse_query(make(use_edns=0, payload=100))
        self.assertEqual(q.udp_size, 512)
        q = parse_query(make(use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]))
        self.assertTrue(q.edns)
        q = parse_query(make(use_edns=1))
        self.assertEqual(q.version, 1)

    def test_cache_key_ignores_case_but_not_flags(self):
        a = parse_query(make("WWW.example.COM"))
        b = parse_query(make("www.EXAMPLE.com"))
        c = parse_query(make("www.example.com", want_dnssec=True))
        d = parse_query(make("www.example.com", "AAAA"))
        self.assertEqual(a.key, b.key)
        self.assertNotEqual(a.key, c.key)
        self.assertNotEqual(a.key, d.key)

    def test_garbage_malformed_unusual(self):
        wire = make(use_edns=False)
        self.assertRaises(Garbage, parse_query, b"\x00" * 11)
        response = bytearray(wire)
        response[2] |= 0x80
        self.assertRaises(Garbage, parse_query, bytes(response))
        self.assertRaises(Malformed, parse_query, wire[:-1])
        self.assertRaises(Malformed, parse_query, wire + b"x")
        self.assertRaises(Malformed, parse_query, wire[:12] + b"\x05ab")
        self.assertRaises(Malformed, parse_query, wire[:12] + b"\x41" + b"a" * 65 + b"\x00" * 5)
        self.assertRaises(Malformed, parse_query, wire[:12] + (b"\x3f" + b"a" * 63) * 5
                          + b"\x00\x00\x01\x00\x01")
        self.assertRaises(Unusual, parse_query, wire[:12] + b"\xc0\x0c\x00\x01\x00\x01")
        self.assertRaises(Unusual, parse_query, wire[:5] + b"\x02" + wire[6:])
        notify = bytearray(wire)
        notify[2] = 0x20
        self.assertRaises(Unusual, parse_query, bytes(notify))

    def test_slow_path_takes_the_unusual(self):
        m = dns.message.make_query("Host.Example.", "A", use_edns=0, want_dnssec=True)
        m.additional.append(dns.rrset.from_text("x.", 0, "IN", "A", "198.18.0.1"))
        wire = m.to_wire()
        self.assertRaises(Unusual, parse_query, wire)
        q = parse_unusual(wire)
        self.assertEqual(q.qname, b"\x04host\x07example\x00")
        self.assertEqual(q.question[:13], b"\x04Host\x07Example")
        self.assertEqual((q.edns, q.do, q.qtype), (True, 1, 1))
        notify = bytearray(wire)
        notify[2] = 0x20
        self.assertRaises(NotImplementedOpcode, parse_unusual, bytes(notify))
        self.assertRaises(Malformed, parse_unusual, wire[:12] + b"\xc0\x0c\x00\x01\x00\x01")

    def test_opt_outside_the_additional_section_is_formerr(self):
        # RFC 6891 6.1.1: an OPT belongs in the additional section only.  One in
        # the answer or authority section was ignored (answered as without EDNS).
        opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        plain = make(use_edns=False)
        for counts in (b"\x00\x01\x00\x01\x00\x00\x00\x00", b"\x00\x01\x00\x00\x00\x01\x00\x00"):
            wire = plain[:4] + counts + plain[12:] + opt
            self.assertRaises(Unusual, parse_query, wire)
            self.assertRaises(Malformed, parse_unusual, wire)

    def test_names(self):
        self.assertEqual(name_from_text("WWW.Example.com."), b"\x03www\x07example\x03com\x00")
        self.assertEqual(name_from_text("."), b"\x00")
        self.assertEqual(name_to_text(b"\x03www\x07example\x00"), "www.example.")
        self.assertRaises(ValueError, name_from_text, "a..b")
        self.assertRaises(ValueError, name_from_text, "a" * 64 + ".com")


class AnswersQuestionTests(SynchronousTestCase):
    """Which upstream responses match the question we sent (all transports)."""

    def test_name_case_ignored_type_and_class_exact(self):
        asked = name_from_text("svc.example.test") + b"\x00\x41\x00\x01"  # HTTPS IN
        r = response_for(make("SVC.Example.TEST", "HTTPS"))
        self.assertTrue(answers_question(r, asked))
        for other in (make("svc.example.test", "TYPE97"),  # 0x61: HTTPS "lowercased"
                      make("svc.example.test", "A"), make("other.example.test", "HTTPS"),
                      make("svc.example.test", "HTTPS", rdclass="CH")):
            self.assertFalse(answers_question(response_for(other), asked))
        self.assertFalse(answers_question(make("svc.example.test", "HTTPS"), asked))  # QR=0
        self.assertFalse(answers_question(r[:20], asked))


class ParseResponseTests(SynchronousTestCase):
    def test_records_ttls_and_opt_removed(self):
        wire = make("www.example.com", use_edns=0)
        resp = response_for(wire, ("www.example.com.", 300, "IN", "A", "198.18.0.1"),
                            ("www.example.com.", 100, "IN", "A", "198.18.0.2"))
        a = parse_response(resp, 12 + len(parse_query(wire).question))
        self.assertEqual(a.counts, (2, 0, 0))
        self.assertEqual(list(a.ttls), [300, 100])
        self.assertEqual(a.ttl, 100)
        self.assertFalse(a.negative)
        q = parse_query(make("WWW.EXAMPLE.COM", use_edns=False))
        a.stamp(1000.0)
        out = dns.message.from_wire(a.render(q, a.body_at(1010.5), 512))
        self.assertEqual(out.id, int.from_bytes(q.id, "big"))
        self.assertEqual(out.question[0].name.to_text(), "WWW.EXAMPLE.COM.")
        self.assertEqual(sorted(rr.ttl for rr in out.answer), [90])  # one rrset, min TTL
        self.assertEqual(out.edns, -1)
        self.assertTrue(out.flags & dns.flags.RA and out.flags & dns.flags.RD)
        self.assertFalse(out.flags & dns.flags.AA)

    def test_ttl_clamps(self):
        wire = make(use_edns=False)
        resp = response_for(wire, ("www.example.com.", 5, "IN", "A", "198.18.0.1"), edns=False)
        qend = len(wire)
        self.assertEqual(parse_response(resp, qend, min_ttl=60).ttl, 60)
        resp = response_for(wire, ("www.example.com.", 999999, "IN", "A", "198.18.0.1"))
        self.assertEqual(parse_response(resp, qend, max_ttl=3600).ttl, 3600)
        # A TTL with the top bit set means 0 (RFC 2181).
        raw = bytearray(resp)
        raw[qend + 6:qend + 10] = b"\x80\x00\x00\x01"
        a = parse_response(bytes(raw), qend)
        self.assertEqual(a.ttl, 0)
        self.assertEqual(a.body[6:10], b"\x00\x00\x00\x00")

    def test_negative_ttl_from_soa(self):
        wire = make(use_edns=False)
        soa = ("example.com.", 900, "IN", "SOA", "ns. host. 1 2 3 4 60")
        a = parse_response(response_for(wire, rcode=dns.rcode.NXDOMAIN, authority=[soa]),
                           len(wire))
        self.assertTrue(a.negative)
        self.assertEqual(a.ttl, 60)  # min(SOA TTL, MINIMUM)
        self.assertEqual(list(a.ttls), [60])
        a = parse_response(response_for(wire, rcode=dns.rcode.NXDOMAIN, authority=[soa]),
                           len(wire), max_negative_ttl=30)
        self.assertEqual(a.ttl, 30)
        # No SOA: not cacheable (RFC 2308).
        a = parse_response(response_for(wire, rcode=dns.rcode.NXDOMAIN), len(wire))
        self.assertEqual(a.ttl, 0)
        # NODATA is negative too.
        a = parse_response(response_for(wire, authority=[soa]), len(wire))
        self.assertTrue(a.negative)
        self.assertEqual(a.ttl, 60)

    def test_cname_chain_ending_in_nodata_is_cached_as_negative(self):
        # CNAME TTL 3600 to a name without the asked type (SOA TTL 900, MINIMUM
        # 60): the NODATA part may be cached 60 s (RFC 2308), not the CNAME's
        # hour (nor past cache_max_negative_ttl); the CNAME keeps its TTL.
        wire = make(use_edns=False)
        cname = ("www.example.com.", 3600, "IN", "CNAME", "cdn.example.net.")
        soa = ("example.net.", 900, "IN", "SOA", "ns. host. 1 2 3 4 60")
        resp = response_for(wire, cname, authority=[soa])
        a = parse_response(resp, len(wire))
        self.assertEqual((a.ttl, list(a.ttls)), (60, [3600, 60]))
        self.assertEqual(parse_response(resp, len(wire), max_negative_ttl=30).ttl, 30)
        self.assertEqual(parse_response(resp, len(wire), min_ttl=120).ttl, 120)
        out = dns.message.from_wire(a.render(parse_query(wire), a.body_at(0), 0))
        self.assertEqual([rr.ttl for rr in out.answer + out.authority], [3600, 60])
        # A positive answer (no SOA) keeps its own TTL.
        a = parse_response(response_for(wire, cname, ("cdn.example.net.", 300, "IN", "A",
                                                      "198.18.0.1")), len(wire))
        self.assertEqual(a.ttl, 300)

    def test_servfail_is_not_cacheable(self):
        wire = make(use_edns=False)
        a = parse_response(response_for(wire, rcode=dns.rcode.SERVFAIL), len(wire))
        self.assertEqual(a.ttl, 0)

    def test_malformed_responses(self):
        wire = make(use_edns=False)
        resp = response_for(wire, ("www.example.com.", 5, "IN", "A", "198.18.0.1"))
        for bad in (resp[:-3], resp + b"\x00", resp[:len(wire)] + b"\xff" * 12):
            self.assertRaises(Malformed, parse_response, bad, len(wire))
        counts = bytearray(resp)
        counts[7] = 5  # claims 5 answers
        self.assertRaises(Malformed, parse_response, bytes(counts), len(wire))

    def test_edns_render_truncation_and_stale(self):
        wire = make("big.example.com", "TXT", use_edns=0)
        texts = [("big.example.com.", 300, "IN", "TXT", f'"{i:03d}{"x" * 200}"')
                 for i in range(8)]
        a = parse_response(response_for(wire, *texts), qend(wire))
        a.stamp(0)
        q = parse_query(make("big.example.com", "TXT", use_edns=0, want_dnssec=True))
        full = a.render(q, a.body_at(0), 0)
        self.assertEqual(len(dns.message.from_wire(full).answer[0]), 8)
        cut = dns.message.from_wire(a.render(q, a.body_at(0), q.udp_size))
        self.assertTrue(cut.flags & dns.flags.TC)
        self.assertEqual(cut.answer, [])
        self.assertEqual(cut.edns, 0)
        self.assertTrue(cut.ednsflags & dns.flags.DO)
        stale = dns.message.from_wire(a.render(q, a.body_stale(), 0))
        self.assertEqual(stale.answer[0].ttl, STALE_TTL)

    def test_ad_only_for_clients_that_ask(self):
        wire = make(use_edns=0, want_dnssec=True)
        resp = response_for(wire, ("www.example.com.", 5, "IN", "A", "198.18.0.1"), ad=True)
        q = parse_query(wire)
        shown = parse_response(resp, qend(wire), show_ad=True)
        hidden = parse_response(resp, qend(wire), show_ad=False)
        self.assertTrue(shown.render(q, shown.body, 0)[3] & 0x20)
        self.assertFalse(hidden.render(q, hidden.body, 0)[3] & 0x20)

    def test_truncated_reply_is_never_larger_than_the_query(self):
        wire = make(use_edns=0)
        q = parse_query(wire)
        self.assertLessEqual(len(truncated(q)), len(wire))
        self.assertEqual(struct.unpack("!H", truncated(q)[2:4])[0] & 0x8200, 0x8200)
