"""
Seeded, in-process fuzzing of the DNS pipeline (deterministic
``random.Random``; a few seconds per test).

- Client queries: valid dnspython queries of many shapes (types, EDNS
  versions and sizes, DO/CD/AD/RD, EDNS options, classes), mutated byte by
  byte, over UDP-like and TCP-like fake ports, through ``FastPath.handle``
  and ``Engine.handle``.  Every reply parses, carries the query's ID, QR
  and (when the query had a parseable one) its question, fits the client's
  UDP limit; both paths send the same bytes; silence only where docs/DNS.md
  says so (shorter than a header, or a response).
- Upstream answers: valid responses of many shapes (CNAME chains, many
  records, big TXT, NXDOMAIN/NODATA with or without SOA, OPT with options,
  compressed or not, TC), mutated after the question, fed to the
  forwarder; then the same question from clients with other EDNS sizes, DO,
  TCP.  Nothing escapes; clients get a parseable answer, SERVFAIL, or TC;
  TTLs never exceed the upstream's and count down with the clock.
- Blocked and rewritten names across types, EDNS variants and transports.

A failure message carries the seed and the input (hex), to replay it.
"""

import base64
import io
import random
import struct
import zlib

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import REWRITE, Decision
from sentinel.dns.fastpath import FastPath
from tests.dns.fakes import CLIENT, FakePolicy, FakePort, Harness, block
from tests.dns.test_fastpath import POLICY as FASTPATH_POLICY

NAMES = [
    "www.example", "WwW.ExAmPlE", "big.example", "nx.example", "nodata.example",
    "cname.example", "ads.example", "null.example", "kid.example", "ok.example",
    "shadow.example", "rw.example", "rwc.example", "localhost", "a.invalid",
    "printer", "10.1.168.192.in-addr.arpa", "x.home.arpa", ".", "a" * 63 + ".example",
    ".".join(["b" * 50] * 4) + ".t", "_srv._tcp.example", "xn--bcher-kva.example",
]
TYPES = ["A", "AAAA", "MX", "TXT", "PTR", "ANY", "SOA", "HTTPS", "SVCB", "CNAME", "NS",
         "SRV", "CAA", "DS", "DNSKEY", "AXFR", "IXFR", "NULL", "TYPE65280", "OPT"]

POLICY = {
    **FASTPATH_POLICY,  # blocks of every mode, an allow, a shadow block
    "rw.example.": Decision(REWRITE, reason="rewrite:1", ttl=60, answers=(
        (1, "198.18.0.7"), (28, "2001:db8::7"), (16, "hello"), (15, "10 mx.example."))),
    "rwc.example.": Decision(REWRITE, reason="rewrite:2", answers=((5, "www.example."),)),
}


def rand_case(rng, name):
    return "".join(c.upper() if rng.random() < 0.3 else c for c in name)


def client_query(rng, name=None, rdtype=None):
    """A valid query of a random shape (wire bytes)."""
    name = rand_case(rng, name if name is not None else rng.choice(NAMES))
    rdtype = rdtype if rdtype is not None else rng.choice(TYPES)
    rdclass = rng.choice(["IN"] * 12 + ["CH", "ANY", "HS", "CLASS42"])
    use_edns = rng.choice([False, False, 0, 0, 0, 1, 255])
    options = []
    if use_edns is not False:
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            kind = rng.randrange(5)
            if kind == 0:
                v6 = rng.random() < 0.5
                options.append(dns.edns.ECSOption(
                    "2001:db8::" if v6 else "198.18.0.0", rng.choice([0, 24, 56 if v6 else 32])))
            elif kind == 1:
                options.append(dns.edns.CookieOption(rng.randbytes(8), b""))
            elif kind == 2:
                options.append(dns.edns.GenericOption(12, b"\x00" * rng.choice([0, 7, 200])))
            elif kind == 3:
                options.append(dns.edns.GenericOption(3, b""))  # NSID
            else:
                options.append(dns.edns.GenericOption(
                    rng.randrange(20, 65536), rng.randbytes(rng.randrange(0, 40))))
    q = dns.message.make_query(
        name, rdtype, rdclass, use_edns=use_edns,
        payload=rng.choice([0, 100, 511, 512, 700, 1232, 1233, 1400, 4096, 65535]),
        want_dnssec=rng.random() < 0.3, options=options or None)
    if rng.random() < 0.2:
        q.flags |= dns.flags.CD
    if rng.random() < 0.2:
        q.flags |= dns.flags.AD
    if rng.random() < 0.2:
        q.flags &= ~dns.flags.RD
    q.id = rng.randrange(65536)
    return q.to_wire(max_size=65535)


INTERESTING = [0, 1, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xC0, 0xFF, 0x29, 12]


def mutate(rng, wire, start=0, rounds=None):
    """Flip, insert, delete, truncate, extend, overwrite bytes at ``start`` or later."""
    b = bytearray(wire)
    for _ in range(rounds if rounds is not None else rng.choice([0, 1, 1, 1, 2, 3])):
        op = rng.randrange(7)
        n = len(b)
        pos = rng.randrange(start, n + 1) if n >= start else n
        if op == 0 and pos < n:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos:pos] = rng.randbytes(rng.choice([1, 1, 2, 4, 11]))
        elif op == 2 and pos < n:
            del b[pos:pos + rng.choice([1, 1, 2, 4, 11])]
        elif op == 3:
            del b[pos:]
        elif op == 4:
            b += rng.randbytes(rng.choice([1, 2, 11, 300]))
        elif op == 5 and pos < n:
            b[pos] = rng.choice(INTERESTING)
        elif op == 6 and n >= 12 and start <= 4:  # a section count
            at = rng.choice([4, 6, 8, 10])
            b[at:at + 2] = struct.pack("!H", rng.choice([0, 1, 2, 3, 0xFFFF]))
    return bytes(b)


def parse(wire):
    try:
        return dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, UnicodeError):
        return None


def expected_limit(query):
    """The UDP size limit the client asked for, as docs/DNS.md clamps it."""
    if query is None or query.edns < 0:
        return 512
    return min(max(query.payload, 512), 1232)


def upstream_reply(question):
    """The fake upstream of the client-query fuzz: a few shapes by question."""
    q = dns.message.from_wire(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question)
    r = dns.message.make_response(q)
    name = q.question[0].name
    text = name.to_text().lower()
    if text.startswith("nx."):
        r.set_rcode(dns.rcode.NXDOMAIN)
    if text.startswith(("nx.", "nodata.")):
        r.authority.append(dns.rrset.from_text(
            "example.", 300, "IN", "SOA", "ns.example. h.example. 1 2 3 4 60"))
    elif text.startswith("cname."):
        r.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", "www.example."))
        r.answer.append(dns.rrset.from_text("www.example.", 200, "IN", "A", "198.18.0.2"))
    else:
        count = 40 if text.startswith("big.") else 1 + zlib.crc32(question) % 3
        for i in range(count):
            r.answer.append(dns.rrset.from_text(
                name, 300 - i, "IN", "TXT", f'"{i:02d}{"x" * 60}"'))
    return r.to_wire(max_size=65535)


class Pair:
    """The general path and the fast path side by side, upstreams answered at once."""

    def __init__(self, responder=upstream_reply):
        self.general = Harness(FakePolicy(POLICY))
        self.fast = Harness(FakePolicy(POLICY))
        self.fastpath = FastPath(self.fast.engine)
        self.responder = responder

    def send(self, wire, tcp, client=CLIENT):
        out = []
        for h, handle in ((self.general, self.general.engine.handle),
                          (self.fast, self.fastpath.handle)):
            port = FakePort(tcp=tcp)
            handle(wire, client, port, None)
            self.answer_upstreams(h)
            out.append(([d for d, _, _ in port.sent], port.dropped))
        return out

    def answer_upstreams(self, h):
        for attempt in h.transports[0].sent:
            if not attempt.done:
                attempt.answered(self.responder(attempt.question),
                                 12 + len(attempt.question))

    def advance(self, seconds):
        for h in (self.general, self.fast):
            h.clock.advance(seconds)


class Checks:
    def check_reply(self, query_wire, reply, tcp, context, lenient=False):
        """What every reply to ``query_wire`` must be (docs/DNS.md)."""
        msg = f"{context}: query {query_wire.hex()} reply {reply.hex()}"
        r = parse(reply)
        if r is None and lenient and unchecked_types(reply):
            return None
        self.assertIsNotNone(r, "unparseable reply; " + msg)
        self.assertEqual(reply[:2], query_wire[:2], "ID; " + msg)
        self.assertTrue(r.flags & dns.flags.QR, "QR; " + msg)
        query = parse(query_wire)
        if (query is not None and len(query.question) == 1
                and query.opcode() == dns.opcode.QUERY
                and query.question[0].rdtype != dns.rdatatype.OPT):
            self.assertEqual(len(r.question), 1, "question not echoed; " + msg)
            self.assertEqual(r.question[0].name, query.question[0].name, msg)
            self.assertEqual((r.question[0].rdtype, r.question[0].rdclass),
                             (query.question[0].rdtype, query.question[0].rdclass), msg)
        if not tcp:
            self.assertLessEqual(len(reply), expected_limit(query), "UDP size; " + msg)
        else:
            self.assertLessEqual(len(reply), 65535, msg)
        return r


class ClientQueryFuzzTests(SynchronousTestCase, Checks):
    def test_mutated_queries(self, seed=1, count=2500):
        rng = random.Random(seed)
        pair = Pair()
        answered = silent = 0
        for n in range(count):
            wire = mutate(rng, client_query(rng))
            tcp = rng.random() < 0.3
            context = f"seed {seed} #{n} tcp={tcp}"
            (general, gdrop), (fast, fdrop) = pair.send(wire, tcp)
            self.assertEqual(general, fast, f"fast path differs; {context}: {wire.hex()}")
            self.assertEqual(gdrop, fdrop, f"{context}: {wire.hex()}")
            if len(wire) < 12 or wire[2] & 0x80:
                self.assertEqual(fast, [], f"must stay silent; {context}: {wire.hex()}")
                silent += 1
                continue
            self.assertEqual(len(fast), 1, f"one reply; {context}: {wire.hex()}")
            self.check_reply(wire, fast[0], tcp, context)
            answered += 1
            if n % 97 == 0:
                pair.advance(1)
            else:
                pair.advance(0.002)  # under the per-client rate limit
        self.assertGreater(answered, count * 0.8)
        self.assertGreater(silent, 10)
        self.assertGreater(pair.fast.engine.stats.cache_hits, count // 100)


    def test_mutated_queries_over_the_rate_limit(self, seed=2, count=1500):
        # Over the limit: UDP dropped or, every second one, an empty TC
        # reply no larger than the query; TCP REFUSED (docs/DNS.md).
        from sentinel.dns.access import DEFAULT_ALLOWED, DEFAULT_EXEMPT

        rng = random.Random(seed)
        pair = Pair()
        for h in (pair.general, pair.fast):
            h.engine.access.configure(DEFAULT_ALLOWED, 5, 5, DEFAULT_EXEMPT)
        limited = 0
        for n in range(count):
            wire = mutate(rng, client_query(rng), rounds=rng.choice([0, 0, 1]))
            tcp = rng.random() < 0.3
            context = f"seed {seed} #{n} tcp={tcp}"
            (general, gdrop), (fast, fdrop) = pair.send(wire, tcp)
            self.assertEqual((general, gdrop), (fast, fdrop),
                             f"fast path differs; {context}: {wire.hex()}")
            if len(wire) < 12 or wire[2] & 0x80:
                self.assertEqual(fast, [], f"must stay silent; {context}: {wire.hex()}")
                continue
            for reply in fast:
                r = self.check_reply(wire, reply, tcp, context)
                if tcp and r.rcode() == dns.rcode.REFUSED or r.flags & dns.flags.TC:
                    limited += 1
                if not tcp and r.flags & dns.flags.TC:
                    self.assertLessEqual(len(reply), len(wire), context)
            pair.advance(0.01)
        self.assertGreater(limited, count // 10)
        self.assertGreater(pair.fast.engine.stats.rate_limited, count // 2)

# -- upstream answers ------------------------------------------------------------------

UP_TYPES = ["A", "AAAA", "TXT", "MX", "CNAME", "PTR", "SOA", "HTTPS", "NS", "SRV", "SVCB",
            "DS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "CAA"]
# Types whose RDATA has a structure of its own (sentinel/dns/rdata.py).
STRUCTURED = {
    "HTTPS": lambda rng: rng.choice([
        '1 . alpn="h2,h3" ipv4hint=198.18.0.1', f"0 svc{rng.randrange(9)}.example.",
        "1 svc.example. mandatory=alpn,port alpn=h2 no-default-alpn port=8443"
        " ech=AAYAAQIDBAU= ipv6hint=2001:db8::1 key65000=abc",
        "2 . alpn=h3 ohttp"]),
    "SVCB": lambda rng: f"1 dns{rng.randrange(9)}.example. alpn=dot port=853 key7=/q",
    "DS": lambda rng: rng.choice([
        f"{rng.randrange(65536)} 13 2 {rng.randbytes(32).hex()}",
        f"1 8 1 {rng.randbytes(20).hex()}", f"1 8 4 {rng.randbytes(48).hex()}",
        "1 8 9 abcd"]),
    "DNSKEY": lambda rng: "257 3 13 " + base64.b64encode(
        rng.randbytes(rng.choice([1, 32, 64]))).decode(),
    "RRSIG": lambda rng: f"A 13 2 300 20261201000000 20261101000000 {rng.randrange(65536)} "
                         f"z{rng.randrange(3)}.example. " + base64.b64encode(
                             rng.randbytes(64)).decode(),
    "NSEC": lambda rng: f"n{rng.randrange(9)}.example. " + rng.choice([
        "A AAAA RRSIG NSEC", "A", "TYPE1234 TYPE65000", "CAA"]),
    "NSEC3": lambda rng: rng.choice([
        "1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG",
        "1 1 10 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s",
        "1 0 0 - 2vptu5timamqttgl4luu9kg21e0aor3s TYPE4000"]),
    "NSEC3PARAM": lambda rng: rng.choice(["1 0 0 -", "1 0 10 aabb"]),
    "CAA": lambda rng: rng.choice([
        '0 issue "letsencrypt.org"', '128 iodef "mailto:a@example"', '0 issuewild ";"']),
}
RDATA = {
    **STRUCTURED,
    "A": lambda rng: f"198.18.{rng.randrange(256)}.{rng.randrange(256)}",
    "AAAA": lambda rng: f"2001:db8::{rng.randrange(65536):x}",
    "TXT": lambda rng: " ".join(
        '"' + "t" * rng.choice([0, 1, 60, 255]) + '"' for _ in range(rng.choice([1, 1, 3, 16]))),
    "MX": lambda rng: f"{rng.randrange(100)} mx{rng.randrange(9)}.example.",
    "CNAME": lambda rng: f"c{rng.randrange(9)}.example.",
    "PTR": lambda rng: f"host{rng.randrange(9)}.example.",
    "NS": lambda rng: f"ns{rng.randrange(9)}.example.",
    "SOA": lambda rng: f"ns.example. h.example. 1 2 3 4 {rng.choice([0, 5, 60, 86400])}",
    "SRV": lambda rng: f"0 5 443 srv{rng.randrange(9)}.example.",
}
TTLS = [0, 1, 2, 5, 30, 300, 3600, 86400, 86401, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def _rrset(rng, name, rdtype, n=1):
    ttl = rng.choice(TTLS)
    rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN,
                            dns.rdatatype.from_text(rdtype))
    for _ in range(n):
        rrset.add(dns.rdata.from_text("IN", rdtype, RDATA[rdtype](rng)), ttl)
    return rrset


def upstream_message(rng, question):
    """A valid response of a random shape for ``question`` (wire)."""
    q = dns.message.from_wire(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question)
    name = q.question[0].name.to_text()
    qtype = dns.rdatatype.to_text(q.question[0].rdtype)
    answer, authority, additional = [], [], []
    rcode = 0
    shape = rng.randrange(8)
    if shape == 0:  # CNAME chain
        owner = name
        for i in range(rng.randrange(1, 6)):
            target = f"chain{i}.example."
            answer.append(dns.rrset.from_text(owner, rng.choice(TTLS), "IN", "CNAME", target))
            owner = target
        if qtype in RDATA and rng.random() < 0.8:
            answer.append(_rrset(rng, owner, qtype, rng.randrange(1, 4)))
    elif shape == 1:  # many records
        answer.append(_rrset(rng, name, qtype if qtype in RDATA else "A", rng.randrange(5, 80)))
    elif shape == 2:  # big TXT
        answer.append(_rrset(rng, name, "TXT", rng.randrange(1, 30)))
    elif shape in (3, 4):  # NXDOMAIN / NODATA, with or without SOA
        rcode = dns.rcode.NXDOMAIN if shape == 3 else 0
        if rng.random() < 0.8:
            authority.append(_rrset(rng, "example.", "SOA"))
        if rng.random() < 0.3:
            authority.append(_rrset(rng, "example.", "NS", 2))
    elif shape == 5:  # answer + authority + additional
        answer.append(_rrset(rng, name, "A", rng.randrange(1, 4)))
        authority.append(_rrset(rng, "example.", "NS", 2))
        additional.append(_rrset(rng, "ns1.example.", "A"))
        additional.append(_rrset(rng, "ns2.example.", "AAAA"))
    elif shape == 6:  # an rcode other than NOERROR/NXDOMAIN
        rcode = rng.choice([1, 2, 4, 5, 6, 7, 9, 15])
    else:
        answer.append(_rrset(rng, name, qtype if qtype in RDATA else "TXT"))
    flags = dns.flags.QR | dns.flags.RD | dns.flags.RA
    for flag in (dns.flags.AD, dns.flags.AA, dns.flags.TC, dns.flags.CD):
        if rng.random() < 0.1:
            flags |= flag
    opt = None
    if rng.random() < 0.6:
        options = []
        if rng.random() < 0.5:
            options.append(dns.edns.GenericOption(10, rng.randbytes(16)))  # cookie
        if rng.random() < 0.3:
            options.append(dns.edns.EDEOption(rng.randrange(30), "from upstream"))
        if rng.random() < 0.2:
            options.append(dns.edns.GenericOption(12, b"\x00" * rng.randrange(100)))
        opt = options
    return render_response(rng, question, flags, rcode, answer, authority, additional, opt)


def render_response(rng, question, flags, rcode, answer, authority, additional, options):
    """Wire bytes, compressed or not; the OPT record anywhere in the additional section."""
    compress = {} if rng.random() < 0.8 else None
    f = io.BytesIO()
    f.write(b"\x00" * 12)
    name_end = question.index(b"\x00") + 1  # no compression in what we send upstream
    if compress is not None:
        dns.name.from_wire(question, 0)[0].to_wire(f, compress)
    else:
        f.write(question[:name_end])
    f.write(question[name_end:])
    counts = []
    opt_rr = None
    if options is not None:
        payload = b"".join(struct.pack("!HH", o.otype, len(w)) + w
                           for o in options for w in [o.to_wire()])
        opt_rr = b"\x00\x00\x29\x04\xd0" + struct.pack("!BBHH", 0, 0, 0x8000 if rng.random()
                                                        < 0.3 else 0, len(payload)) + payload
    for i, section in enumerate((answer, authority, additional)):
        n = 0
        at = rng.randrange(len(section) + 1) if i == 2 else None
        for j, rrset in enumerate(section + [None]):
            if i == 2 and j == at and opt_rr is not None:
                f.write(opt_rr)
                n += 1
            if rrset is not None:
                n += rrset.to_wire(f, compress, want_shuffle=False)
        counts.append(n)
    data = bytearray(f.getvalue())
    data[0:12] = struct.pack("!HHHHHH", 0x1234, (flags | (rcode & 0xF)) & 0xFFFF, 1, *counts)
    return bytes(data)


def reply_ttls(msg):
    """{(section, name, type): TTL} of a message's records (OPT aside)."""
    out = {}
    for i, section in enumerate((msg.answer, msg.authority, msg.additional)):
        for rrset in section:
            if rrset.rdtype != dns.rdatatype.OPT:
                key = (i, rrset.name, rrset.rdtype)
                out[key] = min(out.get(key, rrset.ttl), rrset.ttl)
    return out


def client_variant(rng, name, qtype, do):
    """The same question (same cache key: DO as given, no CD/AD) in another shape."""
    use_edns = 0 if do else rng.choice([False, 0])
    q = dns.message.make_query(rand_case(rng, name), qtype, use_edns=use_edns,
                               payload=rng.choice([512, 600, 1000, 1232, 4096]),
                               want_dnssec=bool(do))
    if rng.random() < 0.2:
        q.flags &= ~dns.flags.RD
    q.id = rng.randrange(65536)
    return q.to_wire()


# The record types whose RDATA the server checks (sentinel/dns/answer.py,
# sentinel/dns/rdata.py); others are passed on as the upstream sent them.
CHECKED_TYPES = {1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 41, 43, 46, 47, 48, 50, 51, 64, 65, 257}


def alias_mode_with_params(rtype, rdata):
    """
    An SVCB/HTTPS record in AliasMode (priority 0) with SvcParams: clients
    must ignore them (RFC 9460 2.4.2), so it is passed on; dnspython refuses.
    """
    if rtype not in (64, 65) or rdata[:2] != b"\x00\x00":
        return False
    i = 2
    while i < len(rdata) and rdata[i]:
        i += rdata[i] + 1
    return i + 1 < len(rdata)


def unchecked_types(reply):
    """
    Types of the records in ``reply`` whose RDATA is passed on unchecked (or
    with what dnspython refuses and clients must ignore).
    """
    i = 12
    while reply[i]:
        i += reply[i] + 1
    i += 5
    found = set()
    for _ in range(sum(struct.unpack("!HHH", reply[6:12]))):
        while reply[i] and reply[i] < 0xC0:
            i += reply[i] + 1
        i += 2 if reply[i] else 1
        rtype, _, _, rdlen = struct.unpack_from("!HHIH", reply, i)
        i += 10 + rdlen
        if rtype not in CHECKED_TYPES or alias_mode_with_params(rtype, reply[i - rdlen:i]):
            found.add(rtype)
    return found


class UpstreamAnswerFuzzTests(SynchronousTestCase, Checks):
    def test_mutated_upstream_answers(self, seed=1, count=1200):
        rng = random.Random(seed)
        h = Harness()
        fastpath = FastPath(h.engine)
        transport = h.transports[0]
        outcomes = {"answer": 0, "servfail": 0, "tc": 0, "stale": 0, "other": 0,
                    "counted down": 0}

        def ask(clients, context, upstream_wire):
            """Clients ask (coalesced when several), then the upstream answers."""
            ports = []
            before = len(transport.sent)
            for wire, tcp in clients:
                ports.append(FakePort(tcp=tcp))
                fastpath.handle(wire, CLIENT, ports[-1], None)
            asked = len(transport.sent) > before
            for attempt in transport.sent[before:]:
                if not attempt.done:
                    data = upstream_wire(attempt.question)
                    attempt.answered(data, 12 + len(attempt.question))
            out = []
            for (wire, tcp), port in zip(clients, ports):
                where = f"{context} client {wire.hex()} tcp={tcp}"
                sent = [d for d, _, _ in port.sent]
                self.assertEqual(len(sent), 1, f"one reply; {where}")
                r = self.check_reply(wire, sent[0], tcp, where, True)
                if r is None:
                    outcomes["other"] += 1
                    r = dns.message.from_wire(sent[0][:4] + b"\x00" * 8)
                elif r.flags & dns.flags.TC:
                    self.assertFalse(tcp, where)
                    outcomes["tc"] += 1
                elif r.rcode() == dns.rcode.SERVFAIL:
                    outcomes["servfail"] += 1
                elif r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    outcomes["answer"] += 1
                else:
                    outcomes["other"] += 1
                out.append(r)
            return out, asked

        for n in range(count):
            name = f"u{n}.example"
            qtype = rng.choice(UP_TYPES)
            do = rng.random() < 0.3
            question = dns.name.from_text(name).to_wire() + struct.pack(
                "!HH", dns.rdatatype.from_text(qtype), 1)
            valid = upstream_message(rng, question)
            qend = 12 + len(question)
            data = bytearray(mutate(rng, valid, qend, rng.choice([0, 0, 1, 1, 2, 4])))
            if rng.random() < 0.2:  # header flags and RCODE (the ID and QR stay)
                data[2] = 0x80 | rng.randrange(128)
                data[3] = rng.randrange(256)
            if rng.random() < 0.15:
                at = rng.choice([6, 8, 10])
                data[at:at + 2] = struct.pack("!H", rng.choice([0, 1, 2, 5, 0xFFFF]))
            data = bytes(data)
            context = f"seed {seed} #{n} upstream {data.hex()}"
            upstream = parse(data)
            bound = reply_ttls(upstream) if upstream is not None else None
            servfail = b"\x12\x34\x81\x82\x00\x01\x00\x00\x00\x00\x00\x00" + question
            replies = []
            for k in range(rng.randrange(1, 5)):
                clients = [(client_variant(rng, name, qtype, do), rng.random() < 0.3)
                           for _ in range(rng.choice([1, 1, 1, 2, 4]))]
                failing = k > 0 and rng.random() < 0.3  # the upstream fails: stale or SERVFAIL
                rs, asked = ask(clients, context, lambda q: servfail if failing else data)
                for r in rs:
                    if r.flags & dns.flags.TC or r.rcode() == dns.rcode.SERVFAIL:
                        continue
                    ttls = reply_ttls(r)
                    if failing and asked:  # served stale (RFC 8767): TTL 30
                        self.assertEqual(set(ttls.values()) - {30}, set(), context)
                        outcomes["stale"] += 1
                        continue
                    if bound is not None:
                        for key, ttl in ttls.items():
                            self.assertLessEqual(ttl, bound.get(key, 0x7FFFFFFF),
                                                 f"TTL above the upstream's; {context}")
                usable = not (rs[0].flags & dns.flags.TC or rs[0].rcode() == 2 or failing)
                replies.append((asked, reply_ttls(rs[0])) if usable else None)
                step = rng.choice([0, 1, 1, 2, 7])
                h.clock.advance(step)
                replies.append(step)
            # TTLs count down: between two replies from the same cached answer
            # (the second not asked upstream), by the seconds in between.
            for i in range(0, len(replies) - 2, 2):
                if isinstance(replies[i], tuple) and isinstance(replies[i + 2], tuple):
                    (_, first), step, (asked, second) = replies[i:i + 3]
                    if not asked:
                        self.assertEqual(second, {k: max(t - step, 0) for k, t in first.items()},
                                         f"TTLs did not count down by {step}; {context}")
                        outcomes["counted down"] += 1
        self.assertGreater(outcomes["answer"], count // 2)
        self.assertGreater(outcomes["servfail"], count // 20)
        self.assertGreater(outcomes["tc"], 10)
        self.assertGreater(outcomes["stale"], 10)
        self.assertGreater(outcomes["counted down"], count // 20)
        self.assertGreater(h.engine.forwarder.coalesced, count // 10)


    def test_mutated_structured_rdata(self, seed=1, count=3000):
        """
        HTTPS/SVCB, the DNSSEC types and CAA mutated inside their RDATA (its
        length mostly kept consistent, so that the layout itself is what is
        broken): the client gets the record when a reader as strict as
        dnspython's decodes it, and SERVFAIL otherwise — never a record it
        cannot decode (browsers ask HTTPS for every page).
        """
        rng = random.Random(seed)
        h = Harness()
        outcomes = {"passed on": 0, "servfail": 0}
        port = FakePort(tcp=True)  # (no TC for the big ones)
        for n in range(count):
            rdtype = rng.choice(sorted(STRUCTURED))
            name = f"s{n}.example."
            h.ask(name, rdtype, port=port)
            attempt = h.transports[0].sent[-1]
            qend = 12 + len(attempt.question)
            r = dns.message.make_response(dns.message.from_wire(
                b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + attempt.question))
            r.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype,
                                                STRUCTURED[rdtype](rng)))
            start = qend + 12  # the one record's RDATA (its owner is a pointer)
            data = bytearray(mutate(rng, r.to_wire(), start, rng.choice([1, 1, 2, 3])))
            if rng.random() < 0.8 and len(data) >= start:
                data[start - 2:start] = struct.pack("!H", len(data) - start)
            data = bytes(data)
            attempt.answered(data, qend)
            reply = port.sent[-1][0]
            context = f"seed {seed} #{n} {rdtype} upstream {data.hex()} reply {reply.hex()}"
            # SvcParams in AliasMode are to be ignored (RFC 9460 2.4.2), but
            # still have to be well formed, as dnspython reads them in
            # ServiceMode (it refuses any in AliasMode).
            ignored = len(data) >= start and alias_mode_with_params(
                dns.rdatatype.from_text(rdtype), data[start:])
            decodable = parse(data) is not None or ignored and parse(
                data[:start] + b"\x00\x01" + data[start + 2:]) is not None
            if decodable:
                self.assertEqual(reply[3] & 0xF, 0, "refused a decodable record; " + context)
                self.assertEqual(reply[6:8], b"\x00\x01", context)
                if not ignored:
                    self.assertEqual(parse(reply).answer[0].rdtype,
                                     dns.rdatatype.from_text(rdtype), context)
                outcomes["passed on"] += 1
            else:
                self.assertEqual(reply[3] & 0xF, dns.rcode.SERVFAIL,
                                 "passed on a record clients cannot decode; " + context)
                self.assertEqual(reply[6:8], b"\x00\x00", context)
                outcomes["servfail"] += 1
            h.clock.advance(0.002)
        self.assertGreater(outcomes["passed on"], count // 5)
        self.assertGreater(outcomes["servfail"], count // 5)


# -- blocked and rewritten names -----------------------------------------------------

REWRITE_VALUES = [
    (1, "198.18.0.9"), (1, "not-an-address"), (28, "2001:db8::9"), (28, "1.2.3.4"),
    (16, "hello"), (16, "é" * 300), (16, ""), (15, "10 mx.example."), (15, "mx.example."),
    (12, "ptr.example."), (2, "ns.example."), (5, "www.example."), (5, "ads.example."),
    (5, "rw0.example."), (5, "loop.example."), (5, "localhost."), (5, "x.invalid."),
    (5, "bad..name."), (5, "a" * 70 + ".example."), (5, ""), (5, "nx.example."),
    (5, "big.example."), (5, "printer."), (99, "whatever"),
]


def random_policy(rng):
    decisions = {"loop.example.": Decision(REWRITE, reason="rewrite:loop",
                                           answers=((5, "loop.example."),))}
    for i in range(12):
        kind = rng.randrange(3)
        if kind == 0:
            decision = block(rng.choice(["nxdomain", "null", "refused"]),
                             rng.choice([0, 1, 10, 86400]),
                             rng.choice(["blocklist:1", "client:2:paused", ""]))
        else:
            answers = tuple(rng.choice(REWRITE_VALUES) for _ in range(rng.randrange(0, 5)))
            decision = Decision(REWRITE, reason=f"rewrite:{i}", ttl=rng.choice([0, 5, 3600]),
                                answers=answers)
        decisions[f"rw{i}.example."] = decision
    decisions["ads.example."] = block("nxdomain", 10)
    return decisions


class PolicyFuzzTests(SynchronousTestCase, Checks):
    def test_blocked_and_rewritten_names(self, seed=1, count=1500):
        rng = random.Random(seed)
        pair = Pair()
        names = [f"rw{i}.example" for i in range(12)] + ["ads.example", "loop.example"]
        for n in range(count):
            if n % 300 == 0:
                policy = random_policy(rng)
                for h in (pair.general, pair.fast):
                    h.policy.decisions = dict(policy)
            wire = client_query(rng, rng.choice(names), rng.choice(
                ["A", "AAAA", "TXT", "MX", "PTR", "NS", "CNAME", "ANY", "SOA", "HTTPS"]))
            if rng.random() < 0.2:
                wire = mutate(rng, wire, rounds=1)
            tcp = rng.random() < 0.3
            context = f"seed {seed} #{n} tcp={tcp}"
            (general, _), (fast, _) = pair.send(wire, tcp)
            self.assertEqual(general, fast, f"fast path differs; {context}: {wire.hex()}")
            if len(wire) < 12 or wire[2] & 0x80:
                self.assertEqual(fast, [], f"must stay silent; {context}: {wire.hex()}")
                continue
            self.assertEqual(len(fast), 1, f"one reply; {context}: {wire.hex()}")
            self.check_reply(wire, fast[0], tcp, context)
            pair.advance(0.002 if n % 50 else 1)
        rows = [r[5] for r in pair.fast.log.rows]
        self.assertGreater(rows.count("blocked"), count // 10)
        self.assertGreater(rows.count("rewritten"), count // 5)


    def test_rewrites_chased_to_mutated_upstream_answers(self, seed=1, count=800):
        # A CNAME rewrite's target is forwarded; the upstream answers it with
        # anything (each target always the same way, for both paths).
        def responder(question):
            rng = random.Random(zlib.crc32(question) ^ seed)
            data = bytearray(mutate(rng, upstream_message(rng, question), 12 + len(question),
                                    rng.choice([0, 0, 1, 2])))
            if rng.random() < 0.1:
                data[3] = rng.randrange(256)
            return bytes(data)

        rng = random.Random(seed)
        pair = Pair(responder)
        policy = {f"rw{i}.example.": Decision(REWRITE, reason=f"rewrite:{i}", answers=(
            (5, f"t{i}.example."),)) for i in range(200)}
        for h in (pair.general, pair.fast):
            h.policy.decisions = policy
        for n in range(count):
            wire = client_query(rng, f"rw{rng.randrange(200)}.example", rng.choice(UP_TYPES))
            tcp = rng.random() < 0.3
            context = f"seed {seed} #{n} tcp={tcp}"
            (general, _), (fast, _) = pair.send(wire, tcp)
            self.assertEqual(general, fast, f"fast path differs; {context}: {wire.hex()}")
            self.assertEqual(len(fast), 1, f"one reply; {context}: {wire.hex()}")
            self.check_reply(wire, fast[0], tcp, context, lenient=True)
            pair.advance(0.002 if n % 50 else 3)
        self.assertGreater(len(pair.fast.transports[0].sent), count // 4)

class FoundByFuzzingTests(SynchronousTestCase):
    """Focused regressions for what the fuzzers above found."""

    def forward(self, answer_bytes, rdtype="A"):
        """A client asks; the one upstream sends ``answer_bytes`` after the question."""
        h = Harness()
        h.ask("www.example", rdtype)
        attempt = h.transports[0].sent[-1]
        qend = 12 + len(attempt.question)
        count = answer_bytes[0]
        data = (b"\x12\x34\x81\x80\x00\x01" + struct.pack("!HHH", count, 0, 0)
                + attempt.question + answer_bytes[1:])
        attempt.answered(data, qend)
        return h.port.sent[-1][0]

    def test_broken_rdata_from_an_upstream_is_servfail_not_passed_on(self):
        # Before, the records were passed on (and cached) as they came: the
        # client got a message it cannot decode, again for the whole TTL.
        cname = b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x01\x2c"
        a = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c"
        broken = [
            (1, cname + b"\x00\x06\x03ns0\xd0\x0f", "CNAME"),  # bad label type in a name
            (1, cname + b"\x00\x06\x03ns0\xc0\x01", "CNAME"),  # pointer into the header
            (1, cname + b"\x00\x06\x03ns0\xc0\x30", "CNAME"),  # pointer forward
            (1, a + b"\x00\x05\xc6\x12\x00\x01\x00", "A"),  # A of 5 bytes
            (1, b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x01\x2c\x00\x03\x05abc", "TXT"),
            (1, b"\xc0\x01" + a[2:] + b"\x00\x04\xc6\x12\x00\x01", "A"),  # owner in the header
            (1, b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", "A"),  # OPT as an answer
            (1, b"\xc0\x0c\x00\x01\x00\x03" + a[6:] + b"\x00\x04\xc6\x12\x00\x01", "A"),  # CH A
            # An owner pointing into the first record's TTL (",." while it is 300, "+."
            # a second later: the name changed as the TTL counted down).
            (2, a + b"\x00\x04\xc6\x12\x00\x01" + b"\xc0\x25" + a[2:] + b"\x00\x04\xc6\x12\x00\x02",
             "A"),
        ]
        for count, records, rdtype in broken:
            reply = self.forward(bytes([count]) + records, rdtype)
            msg = dns.message.from_wire(reply)
            self.assertEqual(msg.rcode(), dns.rcode.SERVFAIL, records.hex())
        # Well-formed ones still get through.
        reply = self.forward(bytes([1]) + a + b"\x00\x04\xc6\x12\x00\x01")
        self.assertEqual(dns.message.from_wire(reply).answer[0][0].address, "198.18.0.1")
        reply = self.forward(bytes([2]) + cname + b"\x00\x06\x03ns0\xc0\x10"
                             + b"\xc0\x29" + a[2:] + b"\x00\x04\xc6\x12\x00\x01", "CNAME")
        self.assertEqual(len(dns.message.from_wire(reply).answer), 2)

    def test_broken_https_dnssec_and_caa_records_are_servfail(self):
        # These types were passed on unchecked: a browser asking HTTPS for a
        # page got a reply it could not decode (and the cache kept it).
        def rr(rtype, rdata):
            return (b"\xc0\x0c" + struct.pack("!HHIH", dns.rdatatype.from_text(rtype), 1, 300,
                                               len(rdata)) + rdata)

        svc = b"\x00\x01\x03svc\x07example\x00"
        broken = [
            ("HTTPS", b"\x00\x01\xc0\x0c"),  # a compressed TargetName
            ("HTTPS", b"\x00"),  # no room for SvcPriority
            ("HTTPS", svc + b"\x00\x03\x00\x02\x01\xbb\x00\x01\x00\x03\x02h2"),  # keys 3, 1
            ("HTTPS", svc + b"\x00\x01\x00\x09\x02h2"),  # a value past the RDATA
            ("HTTPS", svc + b"\x00\x03\x00\x03\x01\xbb\x00"),  # a 3-byte port
            ("HTTPS", svc + b"\x00\x04\x00\x05\xc6\x12\x00\x01\x00"),  # ipv4hint of 5
            ("HTTPS", svc + b"\x00\x00\x00\x02\x00\x03"),  # mandatory port, no port
            ("SVCB", b"\x00\x01\x00\x00\x01\x00\x04\x00h2"),  # an empty alpn id
            ("DS", b"\x30\x39\x0d\x02" + b"\xab" * 31),  # a SHA-256 digest of 31 bytes
            ("DS", b"\x30\x39\x0d"),
            ("DNSKEY", b"\x01\x01\x03"),
            ("RRSIG", b"\x00\x01\x0d\x02" + b"\x00" * 13),  # no signer
            ("RRSIG", b"\x00\x01\x0d\x02" + b"\x00" * 14 + b"\xc0\x0c"),  # compressed signer
            ("NSEC", b"\x01n\x07example\x00\x00\x21" + b"\x40" * 33),  # a 33-byte window
            ("NSEC", b"\x01n\x07example\x00\x00\x01\x40\x00\x01\x40"),  # window 0 twice
            ("NSEC3", b"\x01\x00\x00\x00\x00\x00"),  # an empty next hashed owner
            ("CAA", b"\x00\x00issue"),  # an empty tag
            ("CAA", b"\x00\x05iss-eletsencrypt.org"),  # a tag that is not alphanumeric
        ]
        for rtype, rdata in broken:
            reply = self.forward(b"\x01" + rr(rtype, rdata), rtype)
            self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.SERVFAIL,
                             f"{rtype} {rdata.hex()}")
        # Well-formed ones still get through.
        good = [
            ("HTTPS", svc + b"\x00\x00\x00\x02\x00\x01\x00\x01\x00\x03\x02h2"),  # mandatory alpn
            ("HTTPS", b"\x00\x00\x03svc\x07example\x00"),  # AliasMode
            ("DS", b"\x30\x39\x0d\x02" + b"\xab" * 32),
            ("NSEC", b"\x01n\x07example\x00\x00\x01\x40"),
            ("CAA", b"\x00\x05issueletsencrypt.org"),
        ]
        for rtype, rdata in good:
            msg = dns.message.from_wire(self.forward(b"\x01" + rr(rtype, rdata), rtype))
            self.assertEqual(msg.answer[0].rdtype, dns.rdatatype.from_text(rtype), rdata.hex())

    def test_any_byte_in_a_label_on_the_slow_path(self):
        # Labels may hold any byte (RFC 2181 section 11).  The fast parser
        # took such names, but a query that needs the slow path (here: a
        # second additional record besides OPT) got FORMERR for a non-ASCII
        # byte, and a "." inside a label was echoed as two labels.
        extra = b"\x00\x00\x10\x00\x01\x00\x00\x00\x00\x00\x02\x01x"  # ". TXT x"
        opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        for name in (b"\x03WwW\x07EXAm\xd0lE\x00", b"\x03a.b\x07example\x00"):
            question = name + b"\x00\x01\x00\x01"
            h = Harness()
            port = FakePort()
            FastPath(h.engine).handle(b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x02"
                                      + question + opt + extra, CLIENT, port, None)
            [attempt] = h.transports[0].sent
            self.assertEqual(attempt.question, question.lower())
            attempt.answered(b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                             + attempt.question + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c"
                             b"\x00\x04\xc6\x12\x00\x03", 12 + len(attempt.question))
            reply = port.sent[-1][0]
            self.assertEqual(reply[3] & 0xF, 0, reply.hex())
            self.assertEqual(reply[12:12 + len(question)], question)
            self.assertEqual(dns.message.from_wire(reply).answer[0][0].address, "198.18.0.3")

    def test_rewritten_answers_beyond_512_bytes_are_whole(self):
        # twisted.names cut rewritten answers at 512 bytes, inside a record,
        # with TC set: over TCP, or UDP with EDNS, the client got a message
        # it could not decode.
        text = "é" * 300  # 600 bytes: three strings
        policy = FakePolicy({"rw.example.": Decision(REWRITE, reason="rewrite:1",
                                                     answers=((16, text),))})
        for tcp, edns in ((True, False), (True, 0), (False, 0)):
            h = Harness(policy)
            port = FakePort(tcp=tcp)
            h.ask("rw.example", "TXT", port=port, use_edns=edns, payload=1232)
            msg = dns.message.from_wire(port.sent[-1][0])
            self.assertFalse(msg.flags & dns.flags.TC, (tcp, edns))
            self.assertEqual(b"".join(msg.answer[0][0].strings).decode(), text)
        # Over UDP without EDNS (512 bytes) it does not fit: TC, question only.
        h = Harness(policy)
        h.ask("rw.example", "TXT")
        msg = h.reply()
        self.assertTrue(msg.flags & dns.flags.TC)
        self.assertEqual((len(msg.question), msg.answer), (1, []))

    def test_an_upstream_answer_too_big_to_pass_on_is_servfail(self):
        # A 65535-byte answer without OPT (over TCP) plus our OPT does not
        # fit a TCP frame: the listener dropped the reply, and the client
        # waited for nothing.
        h = Harness()
        port = FakePort(tcp=True)
        h.ask("www.example", "TXT", port=port, use_edns=0)
        attempt = h.transports[0].sent[-1]
        question = attempt.question
        record = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x01\x2c\x01\x00\xff" + b"t" * 255
        count = (65535 - 12 - len(question)) // len(record)
        pad = 65535 - 12 - len(question) - count * len(record) - 13
        last = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x01\x2c" + struct.pack("!HB", pad + 1, pad)
        data = (b"\x12\x34\x81\x80\x00\x01" + struct.pack("!HHH", count + 1, 0, 0) + question
                + record * count + last + b"t" * pad)
        self.assertEqual(len(data), 65535)
        attempt.answered(data, 12 + len(question))
        reply = port.sent[-1][0]
        self.assertLessEqual(len(reply), 65535)
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.SERVFAIL)

    def test_a_stale_answer_with_its_ede_still_fits_the_client_limit(self):
        # The EDE option (6 bytes) was added after the size check: a stale
        # answer just under the limit went out over it.
        for size in range(490, 512):
            h = Harness()
            h.ask("www.example", "TXT", use_edns=0, payload=512)
            attempt = h.transports[0].sent[-1]
            fixed = 12 + len(attempt.question) + 12 + 11  # header, question, RR, our OPT
            rdlen = size - fixed
            rdata = b"\xff" + b"t" * 255 + bytes([rdlen - 257]) + b"t" * (rdlen - 257)
            data = (b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + attempt.question
                    + b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c"
                    + struct.pack("!H", rdlen) + rdata)
            attempt.answered(data, 12 + len(attempt.question))
            self.assertEqual(len(h.port.sent[-1][0]), size)
            h.clock.advance(120)
            h.ask("www.example", "TXT", use_edns=0, payload=512)
            h.transports[0].sent[-1].answered(
                b"\x12\x34\x81\x82\x00\x01\x00\x00\x00\x00\x00\x00" + attempt.question,
                12 + len(attempt.question))
            reply = h.port.sent[-1][0]
            self.assertLessEqual(len(reply), 512, size)
            msg = dns.message.from_wire(reply)
            if msg.flags & dns.flags.TC:
                self.assertEqual(msg.answer, [])
            else:
                self.assertEqual(msg.answer[0].ttl, 30)
                self.assertEqual([o.code for o in msg.options], [3])  # EDE stale answer


class QuestionNameTests(SynchronousTestCase):
    def test_a_compression_loop_in_the_question_ends(self):
        """
        "a" then a pointer back to it: the slow path's own reader ends with
        Malformed (it does not rely on twisted.names having refused it).
        """
        from sentinel.dns.slowpath import _question_name
        from sentinel.dns.wire import Malformed

        header = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        looping = header + b"\x01a\xc0\x0c\x00\x01\x00\x01"
        self.assertRaises(Malformed, _question_name, looping)
        self.assertEqual(_question_name(header + b"\x01a\x00\x00\x01\x00\x01"), b"\x01a\x00")
