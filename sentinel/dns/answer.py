"""
An upstream response turned into what the cache stores and the server
sends (pure, no I/O).

L{parse_response} walks the records of a response by byte indexing and
keeps: the RCODE and AD bit, the bytes after the question (the upstream's
OPT record removed — we add our own per client), where each record's TTL
is, and the TTL the answer may be cached for (RFC 2308 for negative
answers, also a CNAME chain ending in NODATA: the SOA's TTL capped by its
MINIMUM).

An L{Answer} renders a reply for any client asking the same question: a
new ID, the client's own question bytes (case preserved), RD echoed, the
TTLs counted down by the answer's age (never up: a negative age, the clock
having stepped back, serves the TTLs as stored), our OPT when the client sent EDNS.
Compression pointers in the stored records point into the question at
offset 12, which has the same length whatever the case of the name.
"""

import struct
from array import array as _array

from sentinel.dns.wire import (
    AAAA, AD, CD, CNAME, MX, NOERROR, NS, NXDOMAIN, OPT, PTR, QR, RA, RD, SOA, SRV, TC, TXT, A,
    Malformed, opt_record,
)
from sentinel.dns.rdata import RDATA_CHECKS, check_name

DNAME = 39

_pack_into = struct.pack_into
_unpack_from = struct.unpack_from
MAX_TTL = 0x7FFFFFFF
STALE_TTL = 30  # RFC 8767 section 4


# Record types whose RDATA is checked (clients that decode them reject the
# whole message when it is broken): fixed sizes, and names at an offset;
# TXT and SOA below, and the rarer types in sentinel.dns.rdata.
_RDATA_SIZE = {A: 4, AAAA: 16}
_RDATA_NAME = {NS: 2, CNAME: 2, PTR: 2, DNAME: 2, MX: 4, SRV: 8}  # offset + 2 (0: no name)


class Answer:
    """
    Everything an answer keeps alive is bytes, ints or shared objects: no
    per-answer list or tuple for the garbage collector to scan (with tens
    of thousands of answers cached and replaced, that was ~1 us per
    forwarded query).
    """

    __slots__ = (
        "rcode", "ad", "counts", "body", "_offsets", "_ttls", "ttl", "negative",
        "stored", "expires", "_age", "_body", "hdr",
    )

    def __init__(self, rcode, ad, counts, body, offsets, ttls, ttl, negative, cd=False):
        self.rcode = rcode
        self.ad = ad  # the upstream set AD and the client may see it
        shared = _COUNTS.get(counts)
        if shared is None:
            if len(_COUNTS) > 10000:
                _COUNTS.clear()
            shared = _COUNTS[counts] = counts
        self.counts = shared  # (an, ns, ar) without OPT
        self.body = body  # records after the question, TTLs as stored
        self._offsets = _array("l", offsets).tobytes()  # TTL positions in body
        self._ttls = _array("l", ttls).tobytes()  # stored TTLs (clamped)
        self.ttl = ttl  # how long the answer may be cached (0: not at all)
        self.negative = negative  # NXDOMAIN / NODATA
        self.stored = 0
        self.expires = 0.0
        self._age = 0
        self._body = body
        # CD copied from the query (RFC 4035 3.2.2): it is part of the cache
        # key, so every client this answer is rendered for set it alike.
        self.hdr = _headers(RA | (AD if ad else 0) | (CD if cd else 0) | (rcode & 0xF), counts)

    @property
    def offsets(self):
        a = _array("l")
        a.frombytes(self._offsets)
        return a.tolist()

    @property
    def ttls(self):
        a = _array("l")
        a.frombytes(self._ttls)
        return a.tolist()

    def stamp(self, now):
        self.stored = int(now)
        self.expires = now + self.ttl
        self._age = 0
        self._body = self.body

    def body_at(self, now):
        """The records with TTLs counted down to ``now``."""
        age = int(now) - self.stored
        if age == self._age:
            return self._body
        if age < 0:
            # The clock stepped back (until the cache is rebased, see
            # Cache.shift): a negative age would count the TTLs up, past
            # what the upstream gave.  Served as stored instead.
            self._age = age
            self._body = body = self.body
            return body
        b = bytearray(self.body)
        for off, t in zip(self.offsets, self.ttls):
            t -= age
            _pack_into("!I", b, off, t if t > 0 else 0)
        self._body = body = bytes(b)
        self._age = age
        return body

    def body_stale(self):
        b = bytearray(self.body)
        for off in self.offsets:
            _pack_into("!I", b, off, STALE_TTL)
        return bytes(b)

    def render(self, q, body, limit):
        """
        The reply for query ``q`` with these records, or a truncated reply
        (TC, no records) when it exceeds ``limit`` bytes (0: no limit).
        """
        edns = q.edns
        out = q.id + self.hdr[q.rd | edns << 1] + q.question + body
        if edns:
            out += b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00" if q.do else \
                b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        if limit and len(out) > limit:
            return truncated(q, self.rcode, self.ad)
        return out


_HEADERS = {}
_COUNTS = {}  # (an, ns, ar) -> the same tuple, shared between answers


def _headers(b3, counts):
    """Header bytes 2-11 per (RD, EDNS), index rd | edns << 1; shared between answers."""
    key = (b3, counts)
    hdr = _HEADERS.get(key)
    if hdr is None:
        an, ns, ar = counts
        hdr = tuple(
            bytes([QR | rd, b3]) + struct.pack("!HHHH", 1, an, ns, ar + edns)
            for edns in (0, 1) for rd in (0, 1))
        if len(_HEADERS) > 10000:
            _HEADERS.clear()
        _HEADERS[key] = hdr
    return hdr


def truncated(q, rcode=NOERROR, ad=False):
    """TC set, question only (plus OPT): the client retries over TCP."""
    b3 = RA | (AD if ad else 0) | (CD if q.cd else 0) | (rcode & 0xF)
    out = q.id + bytes([QR | TC | q.rd, b3]) + struct.pack(
        "!HHHH", 1, 0, 0, 1 if q.edns else 0) + q.question
    return out + opt_record(q.do) if q.edns else out


def parse_response(data, qend, min_ttl=0, max_ttl=86400, max_negative_ttl=3600,
                   show_ad=True, cd=False):
    """
    An L{Answer} from a response whose header and question (ending at
    ``qend``) were already checked, for queries with CD set or not
    (``cd``: replies copy it, RFC 4035 3.2.2).  Raises Malformed.
    """
    end = len(data)
    if end < qend:
        raise Malformed("short response")
    rcode = data[3] & 0xF
    an = data[6] << 8 | data[7]
    auth_end = an + (data[8] << 8 | data[9])
    total = auth_end + (data[10] << 8 | data[11])
    i = qend
    offsets, ttls = [], []
    soa_ttl = None
    soa_at = -1  # index of the authority section's SOA in offsets/ttls
    names = {}  # where the labels of checked names start (see check_name)
    cut = None  # where the upstream's OPT record starts (additional records stop there)
    kept_ar = 0
    dirty = False  # a TTL in the body must be rewritten
    try:
        for n in range(total):
            start = i
            if data[i] == 0xC0 and data[i + 1] == 12:  # the usual case: the question's name
                i += 2
            else:
                i = check_name(data, i, end, names)
            rtype, rclass, ttl, rdlen = _unpack_from("!HHIH", data, i)
            rdata = i + 10
            i = rdata + rdlen
            if i > end:
                raise Malformed("truncated rdata")
            if n >= auth_end:
                if rtype == OPT or cut is not None:
                    if cut is None:
                        cut = start
                    continue
                kept_ar += 1
            elif rtype == OPT:
                raise Malformed("OPT outside the additional section")
            if rclass != 1:  # (clients decode RDATA by class too: CH A is another record)
                raise Malformed("record class")
            # What the client decodes must decode: the usual types' RDATA.
            size = _RDATA_SIZE.get(rtype)
            if size is not None:
                if rdlen != size:
                    raise Malformed("bad RDATA length")
            else:
                at = _RDATA_NAME.get(rtype)
                if at is not None:
                    if check_name(data, rdata + at - 2, i, names) != i:
                        raise Malformed("bad RDATA name")
                elif rtype == TXT:
                    j = rdata
                    while j < i:
                        j += data[j] + 1
                    if j != i or not rdlen:
                        raise Malformed("bad TXT")
                elif rtype == SOA:
                    j = check_name(data, check_name(data, rdata, i, names), i, names)
                    if j + 20 != i:
                        raise Malformed("bad SOA")
                else:
                    check = RDATA_CHECKS.get(rtype)
                    if check is not None:
                        check(data, rdata, i, names)
            if ttl > MAX_TTL:
                ttl = 0
                dirty = True
            if rtype == SOA and n >= an and n < auth_end:
                minimum = _unpack_from("!I", data, j + 16)[0]
                soa_ttl = ttl if ttl < minimum else minimum
                soa_at = len(ttls)
            offsets.append(rdata - 6 - qend)
            ttls.append(ttl)
    except (IndexError, struct.error):
        raise Malformed("truncated record") from None
    if i != end:
        raise Malformed("trailing bytes")
    body = data[qend:cut] if cut is not None else data[qend:]
    if qend + len(body) > 65524:  # with our OPT (11 bytes) a reply must fit a TCP frame
        raise Malformed("too big to pass on")
    negative = rcode == NXDOMAIN or (rcode == NOERROR and an == 0)
    if negative:
        ttl = 0
        if soa_ttl is not None:
            ttl = min(max(soa_ttl, min_ttl), max_negative_ttl)
        clamped = [t if t < ttl else ttl for t in ttls]
    elif rcode == NOERROR:
        clamped = [min_ttl if t < min_ttl else (max_ttl if t > max_ttl else t) for t in ttls]
        ttl = min(clamped)
        if soa_ttl is not None:
            # A CNAME chain ending in NODATA (an SOA in the authority section):
            # the answer is negative for its last name (RFC 2308 sections 2.2,
            # 5), cached no longer than a NODATA answer; the SOA's TTL is the
            # negative TTL, as above.  The CNAMEs keep theirs.
            negative_ttl = min(max(soa_ttl, min_ttl), max_negative_ttl)
            clamped[soa_at] = negative_ttl
            if negative_ttl < ttl:
                ttl = negative_ttl
    else:
        ttl = 0
        clamped = ttls
    if dirty or clamped != ttls:
        body = bytearray(body)
        for off, t in zip(offsets, clamped):
            _pack_into("!I", body, off, t)
        body = bytes(body)
    ad = show_ad and bool(data[3] & AD)
    return Answer(rcode, ad, (an, auth_end - an, kept_ar), body, offsets, clamped, ttl,
                  negative, cd)


_QUERY_HEAD = tuple(
    bytes([RD, (0x10 if f & 2 else 0) | (0x20 if f & 4 else 0)])
    + b"\x00\x01\x00\x00\x00\x00\x00\x01" for f in range(8))
_QUERY_TAIL = tuple(opt_record(f & 1) for f in range(8))


def upstream_query(qid, question, flags):
    """The query we send upstream (lowercase question, RD, CD/AD as asked, our OPT)."""
    return qid + _QUERY_HEAD[flags] + question + _QUERY_TAIL[flags]
