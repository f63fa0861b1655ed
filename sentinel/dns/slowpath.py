"""
The slow path for queries the byte-indexing parser does not take (other
opcodes, compressed question names, extra records such as TSIG, several
additional records): decoded with twisted.names' message objects, then
turned into the same L{Query} the fast path produces, or rejected.
"""

from twisted.names import dns

from sentinel.dns.wire import (
    MAX_NAME, OPCODE_MASK, OPT, QR, EDNS_SIZE, Garbage, Malformed, Query,
)


class NotImplementedOpcode(Exception):
    """A query with an opcode other than QUERY: answer NOTIMP."""


def parse_unusual(data):
    if len(data) < 12 or data[2] & QR:
        raise Garbage("not a query")
    if data[2] & OPCODE_MASK:
        raise NotImplementedOpcode()
    message = dns.Message()
    try:
        message.fromStr(data)
    except Exception:
        raise Malformed("undecodable") from None
    if len(message.queries) != 1:
        raise Malformed("not exactly one question")
    query = message.queries[0]
    if query.type == OPT:
        raise Malformed("OPT in the question")
    wire = _question_name(data)
    question = wire + query.type.to_bytes(2, "big") + query.cls.to_bytes(2, "big")
    if any(rr.type == OPT for rr in message.answers) or any(
            rr.type == OPT for rr in message.authority):
        raise Malformed("OPT outside the additional section")  # RFC 6891 6.1.1
    opts = [rr for rr in message.additional if rr.type == OPT]
    if len(opts) > 1:
        raise Malformed("several OPT records")
    edns = bool(opts)
    do, size, version = 0, 512, 0
    if edns:
        opt = opts[0]
        if opt.name.name:
            raise Malformed("OPT owner is not the root")
        size = min(max(opt.cls, 512), EDNS_SIZE)
        version = (opt.ttl >> 16) & 0xFF
        do = 1 if opt.ttl & 0x8000 else 0
    cd = 1 if message.checkingDisabled else 0
    ad = 1 if message.authenticData else 0
    return Query(
        data[:2], 1 if message.recDes else 0, wire.lower(), question, query.type, query.cls,
        edns, do, size, do | cd << 1 | ad << 2, version, cd, ad,
    )


def _question_name(data):
    """
    The question's name, uncompressed wire format, read from the bytes:
    labels may hold any byte (RFC 2181 section 11), "." included, which
    twisted.names' dotted names cannot tell apart (the fast parser takes
    such names as they are).  Compression pointers must point backwards.
    """
    out = bytearray()
    i = 12
    try:
        while True:
            n = data[i]
            if n == 0:
                break
            if n < 64:
                out += data[i:i + n + 1]
                if len(out) >= MAX_NAME:  # also ends a pointer loop, whoever parsed first
                    raise Malformed("name too long")
                i += n + 1
            elif n >= 0xC0:
                target = (n & 0x3F) << 8 | data[i + 1]
                if target >= i:
                    raise Malformed("compression pointer not backwards")
                i = target
            else:
                raise Malformed("bad label")
    except IndexError:
        raise Malformed("truncated name") from None
    out.append(0)
    if len(out) > MAX_NAME:
        raise Malformed("name too long")
    return bytes(out)
