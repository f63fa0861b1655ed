"""
The slow path for queries the byte-indexing parser does not take (other
opcodes, compressed question names, extra records such as TSIG, several
additional records): decoded with twisted.names' message objects, then
turned into the same L{Query} the fast path produces, or rejected.
"""

from twisted.names import dns

from sentinel.dns.wire import (
    OPCODE_MASK, OPT, QR, EDNS_SIZE, Garbage, Malformed, Query, name_from_text,
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
    raw_name = query.name.name
    try:
        labels = raw_name.split(b".") if raw_name else []
        wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
        if any(not 0 < len(label) <= 63 for label in labels) or len(wire) > 255:
            raise ValueError
        name_from_text(raw_name.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise Malformed("unusable name") from None
    question = wire + query.type.to_bytes(2, "big") + query.cls.to_bytes(2, "big")
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
