"""
DNS wire format by byte indexing (pure, no I/O): the fast query parser the
UDP hot path uses, and the constants and small builders shared by the
answer, cache and forwarder modules.

Only the common query shape is parsed here: one question, no answer or
authority records, and at most one additional record which must be an
EDNS OPT.  Anything else goes to L{sentinel.dns.slowpath}, which uses
twisted.names message objects.

Names are handled in wire format.  ``bytes.lower()`` is safe on a wire
name: label lengths are at most 63, below ``b"A"`` (65), so only the
ASCII letters inside labels change.
"""

import struct

# Header bits (byte 2 and byte 3 of the message)
QR = 0x80
OPCODE_MASK = 0x78
AA = 0x04
TC = 0x02
RD = 0x01
RA = 0x80
AD = 0x20
CD = 0x10

# RCODEs
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16

# Types and classes
A, NS, CNAME, SOA, PTR, HINFO, MX, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 13, 15, 16, 28, 33
OPT, IXFR, AXFR, ANY = 41, 251, 252, 255
IN, CH = 1, 3

EDNS_SIZE = 1232  # what we advertise and the most we send over UDP (DNS flag day 2020)
MAX_NAME = 255

ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"
ONE_QUESTION_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"

# Our OPT record: root owner, type 41, class = UDP size, TTL = ext-rcode 0,
# version 0, flags (DO echoed), no options.
OPT_NODO = b"\x00\x00\x29" + struct.pack("!H", EDNS_SIZE) + b"\x00\x00\x00\x00\x00\x00"
OPT_DO = b"\x00\x00\x29" + struct.pack("!H", EDNS_SIZE) + b"\x00\x00\x80\x00\x00\x00"

# Cache-key suffix per query flag combination (DO | CD<<1 | AD<<2).
KEY_FLAGS = tuple(bytes([i]) for i in range(8))


class Garbage(Exception):
    """Not a DNS query we should answer at all: stay silent."""


class Malformed(Exception):
    """A query with a usable header but a broken body: answer FORMERR."""


class Unusual(Exception):
    """A well-formed query the fast parser does not handle (slow path)."""


class Query:
    """A parsed query (see L{parse_query})."""

    __slots__ = (
        "id", "rd", "qname", "question", "qtype", "qclass", "edns", "do",
        "udp_size", "flags", "key", "version", "cd", "ad",
    )

    def __init__(self, qid, rd, qname, question, qtype, qclass, edns, do, udp_size,
                 flags, version=0, cd=0, ad=0):
        self.id = qid  # 2 bytes
        self.rd = rd  # 0 or 1
        self.qname = qname  # lowercase wire name
        self.question = question  # the question section as the client sent it
        self.qtype = qtype
        self.qclass = qclass
        self.edns = edns  # the client sent an OPT record
        self.do = do  # DNSSEC OK
        self.udp_size = udp_size  # the reply size limit over UDP
        self.flags = flags  # DO | CD<<1 | AD<<2
        self.version = version  # EDNS version
        self.cd = cd
        self.ad = ad
        self.key = qname + question[-4:] + KEY_FLAGS[flags]


def question_end(data, i=12):
    """
    Index just past the query name starting at ``i`` (no compression);
    raises Malformed when the name runs off the end or is too long, and
    Unusual for a compression pointer.
    """
    start = i
    try:
        n = data[i]
        while n:
            if n > 63:
                if n >= 0xC0:
                    raise Unusual("compressed question name")
                raise Malformed("bad label length")
            i += n + 1
            n = data[i]
    except IndexError:
        raise Malformed("truncated name") from None
    i += 1
    if i - start > MAX_NAME:
        raise Malformed("name too long")
    return i


def parse_query(data):
    """
    Parse the common query shape.  Raises Garbage (stay silent), Malformed
    (FORMERR), Unusual (use the slow path).
    """
    if len(data) < 12:
        raise Garbage("shorter than a header")
    b2 = data[2]
    if b2 & QR:
        raise Garbage("a response, not a query")
    if b2 & OPCODE_MASK:
        raise Unusual("opcode")
    counts = data[4:12]
    if counts == ONE_QUESTION:
        edns = False
    elif counts == ONE_QUESTION_OPT:
        edns = True
    else:
        raise Unusual("section counts")
    end = question_end(data)
    qend = end + 4
    if qend > len(data):
        raise Malformed("truncated question")
    qtype = data[end] << 8 | data[end + 1]
    qclass = data[end + 2] << 8 | data[end + 3]
    b3 = data[3]
    cd = 1 if b3 & CD else 0
    ad = 1 if b3 & AD else 0
    do = 0
    udp_size = 512
    version = 0
    if edns:
        # The OPT record must be the root name, type 41, and end the message.
        if data[qend:qend + 3] != b"\x00\x00\x29":
            raise Unusual("additional record is not OPT")
        if qend + 11 > len(data):
            raise Malformed("truncated OPT")
        rdlen = data[qend + 9] << 8 | data[qend + 10]
        if qend + 11 + rdlen != len(data):
            raise Malformed("OPT length")
        udp_size = data[qend + 3] << 8 | data[qend + 4]
        if udp_size < 512:
            udp_size = 512
        elif udp_size > EDNS_SIZE:
            udp_size = EDNS_SIZE
        version = data[qend + 6]
        do = 1 if data[qend + 7] & 0x80 else 0
    elif qend != len(data):
        raise Malformed("trailing bytes")
    if qtype == OPT:
        raise Malformed("OPT in the question")
    return Query(
        data[:2], b2 & RD, data[12:end].lower(), data[12:qend], qtype, qclass,
        edns, do, udp_size, do | cd << 1 | ad << 2, version, cd, ad,
    )


def answers_question(data, question):
    """
    Whether upstream response ``data`` answers ``question`` (the question
    section we sent: lowercase name, type, class): a response, one question,
    the name equal but for case, the type and class equal.  Only the name is
    compared case-insensitively: ``bytes.lower()`` on the whole section also
    changed a type byte between 0x41 and 0x5A (HTTPS is type 65, 0x0041), so
    every HTTPS answer was dropped as spoofed and the client got SERVFAIL.
    """
    qend = 12 + len(question)
    return (len(data) >= qend and data[2] & QR and data[4:6] == b"\x00\x01"
            and data[qend - 4:qend] == question[-4:]
            and data[12:qend - 4].lower() == question[:-4])


def name_to_text(wire):
    """b"\\x03www\\x07example\\x00" -> "www.example." (for logs and slow paths)."""
    labels, i = [], 0
    while i < len(wire) and wire[i]:
        n = wire[i]
        labels.append(wire[i + 1:i + 1 + n].decode("ascii", "backslashreplace"))
        i += n + 1
    return ".".join(labels) + "."


def name_from_text(text):
    """"www.example." -> lowercase wire name; ValueError if it is not a name."""
    text = text.strip().rstrip(".").lower()
    out = bytearray()
    if text:
        for label in text.split("."):
            raw = label.encode("idna") if not label.isascii() else label.encode()
            if not 0 < len(raw) <= 63:
                raise ValueError(f"bad label in {text!r}")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError(f"name too long: {text!r}")
    return bytes(out)


def opt_record(do, options=b""):
    """Our OPT record, with EDNS options (already encoded) when given."""
    if not options:
        return OPT_DO if do else OPT_NODO
    return (
        b"\x00\x00\x29" + struct.pack("!H", EDNS_SIZE) + b"\x00\x00"
        + (b"\x80\x00" if do else b"\x00\x00") + struct.pack("!H", len(options))
        + options
    )


def ede_option(code, text=""):
    """An Extended DNS Error option (RFC 8914)."""
    raw = text.encode("utf-8")
    return struct.pack("!HHH", 15, 2 + len(raw), code) + raw


def add_opt(message, do, options=b""):
    """Append our OPT record to an encoded message without one."""
    arcount = (message[10] << 8 | message[11]) + 1
    return message[:10] + struct.pack("!H", arcount) + message[12:] + opt_record(do, options)


def rr_header(rtype, ttl, rdlen, owner=b"\xc0\x0c"):
    """An RR header (owner defaults to a pointer to the question name)."""
    return owner + struct.pack("!HHIH", rtype, IN, ttl, rdlen)


class RandomIds:
    """Unpredictable 16-bit query IDs from the OS CSPRNG, read in batches."""

    def __init__(self, batch=4096):
        import os

        self._urandom = os.urandom
        self._batch = batch
        self._buf = b""
        self._pos = 0

    def next(self):
        pos = self._pos
        if pos >= len(self._buf):
            self._buf = self._urandom(self._batch * 2)
            pos = 0
        self._pos = pos + 2
        return self._buf[pos:pos + 2]


random_ids = RandomIds()
