"""
Replies Sentinel makes itself (pure): blocked answers, errors, RFC 8482
minimal ANY answers, the health-probe answer.

Blocked answers are assembled from a prebuilt tail per (mode, TTL, type,
EDNS flags): ID + header + the client's question + tail, so a block costs
a few byte concatenations.

- ``nxdomain``: NXDOMAIN with an SOA in the authority section whose TTL
  and MINIMUM are the blocked TTL, so clients cache the block (RFC 2308).
- ``null``: A 0.0.0.0 / AAAA :: with the blocked TTL; other types get
  NOERROR/NODATA with the same SOA.
- ``refused``: REFUSED.

When the client sent EDNS, blocked answers carry an Extended DNS Error
(RFC 8914): 17 "Filtered" for a client's own policy (reasons starting with
``client:``), 15 "Blocked" otherwise.
"""

import struct

from sentinel.dns.wire import (
    AAAA, BADVERS, CD, FORMERR, HINFO, NOERROR, NOTIMP, NXDOMAIN, QR, RA, REFUSED, SERVFAIL,
    SOA, TXT, A, opt_record, ede_option, rr_header,
)

EDE_STALE = 3
EDE_BLOCKED = 15
EDE_FILTERED = 17
EDE_NO_REACHABLE_AUTHORITY = 22
EDE_PROHIBITED = 18

# SOA rdata of our synthesized negative answers.
_MNAME = b"\x07blocked\x08sentinel\x07invalid\x00"
_RNAME = b"\x0ahostmaster\x08sentinel\x07invalid\x00"
ANY_TTL = 3600
_HINFO = b"\x07RFC8482\x00"


def soa_record(ttl):
    rdata = _MNAME + _RNAME + struct.pack("!IIIII", 1, 3600, 600, 86400, ttl)
    return rr_header(SOA, ttl, len(rdata)) + rdata


def _header(rd, rcode, an=0, ns=0, ar=0, cd=0):
    """Header bytes 2-11; RD and CD copied from the query (RFC 4035 3.2.2)."""
    return bytes([QR | rd, RA | (CD if cd else 0) | rcode]) + struct.pack("!HHHH", 1, an, ns, ar)


class Blocker:
    """Prebuilt blocked answers (see module docstring)."""

    def __init__(self):
        self._templates = {}

    def answer(self, q, decision):
        return self.answer_raw(q.id, q.rd | q.cd << 1, q.question, q.qtype, q.edns, q.do,
                               decision)

    def answer_raw(self, qid, bits, question, qtype, edns, do, decision):
        """``bits``: the query's RD | CD << 1 (both copied into the reply)."""
        mode = decision.block_mode
        kind = qtype if mode == "null" and (qtype == A or qtype == AAAA) else 0
        ede = EDE_FILTERED if decision.reason[:7] == "client:" else EDE_BLOCKED
        tkey = (mode, decision.ttl, kind, edns, do, ede)
        t = self._templates.get(tkey)
        if t is None:
            if len(self._templates) > 4096:
                self._templates.clear()
            t = self._templates[tkey] = self._build(mode, decision.ttl, kind, edns, do, ede)
        return b"".join((qid, t[bits], question, t[4]))

    @staticmethod
    def _build(mode, ttl, kind, edns, do, ede):
        ar = 1 if edns else 0
        if mode == "refused":
            rcode, an, ns, tail = REFUSED, 0, 0, b""
        elif mode == "null" and kind == A:
            rcode, an, ns, tail = NOERROR, 1, 0, rr_header(A, ttl, 4) + b"\x00" * 4
        elif mode == "null" and kind == AAAA:
            rcode, an, ns, tail = NOERROR, 1, 0, rr_header(AAAA, ttl, 16) + b"\x00" * 16
        elif mode == "null":
            rcode, an, ns, tail = NOERROR, 0, 1, soa_record(ttl)
        else:
            rcode, an, ns, tail = NXDOMAIN, 0, 1, soa_record(ttl)
        if edns:
            tail += opt_record(do, ede_option(ede))
        return tuple(_header(bits & 1, rcode, an, ns, ar, bits >> 1) for bits in range(4)) + (
            tail,)


def error(q, rcode, ede=None, text=""):
    """An answer with no records: question echoed, OPT when the client sent one."""
    if q.edns:
        options = ede_option(ede, text) if ede is not None else b""
        if rcode == BADVERS:
            opt = bytearray(opt_record(q.do, options))
            opt[5] = BADVERS >> 4  # extended RCODE
            return q.id + _header(q.rd, 0, ar=1, cd=q.cd) + q.question + bytes(opt)
        return (q.id + _header(q.rd, rcode, ar=1, cd=q.cd) + q.question
                + opt_record(q.do, options))
    return q.id + _header(q.rd, rcode, cd=q.cd) + q.question


def servfail(q):
    return error(q, SERVFAIL, EDE_NO_REACHABLE_AUTHORITY, "no upstream answered")


def header_only(data, rcode):
    """FORMERR/NOTIMP for a query we could not (or will not) parse: header only."""
    b2 = QR | (data[2] & 0x79)  # opcode and RD echoed
    return data[:2] + bytes([b2, RA | (data[3] & CD) | rcode]) + b"\x00" * 8


def formerr(data):
    return header_only(data, FORMERR)


def notimp(data):
    return header_only(data, NOTIMP)


def minimal_any(q):
    """RFC 8482 section 4.2: one synthesized HINFO record instead of everything."""
    rr = rr_header(HINFO, ANY_TTL, len(_HINFO)) + _HINFO
    ar = 1 if q.edns else 0
    out = q.id + _header(q.rd, NOERROR, an=1, ar=ar, cd=q.cd) + q.question + rr
    return out + opt_record(q.do) if q.edns else out


def probe_answer(q):
    """The self-probe's answer: one TXT "ok" (class CH)."""
    rdata = b"\x02ok"
    rr = b"\xc0\x0c" + struct.pack("!HHIH", TXT, 3, 0, len(rdata)) + rdata
    return q.id + _header(q.rd, NOERROR, an=1) + q.question + rr
