"""
Names that never leave the LAN (pure): answered by Sentinel itself instead
of being forwarded to the upstreams, like dnsmasq's ``domain-needed`` and
``bogus-priv``.  They are checked after the policy (a block or a rewrite
wins) and before the cache and the upstreams:

- ``localhost`` and ``*.localhost`` (RFC 6761 6.3): A 127.0.0.1, AAAA ::1,
  other types NODATA.  Always.
- ``invalid`` and ``*.invalid`` (RFC 6761 6.4): NXDOMAIN.  Always.
- reverse lookups in the private and special ranges (RFC 6303 section 4,
  plus 100.64.0.0/10 of RFC 6598 per RFC 7793): NXDOMAIN below the zone,
  NODATA at its apex (an SOA for the SOA type) — unless
  ``forward_private_reverse``.
- single-label names (``printer``), except the types that make sense for
  a top-level domain (SOA, NS, DS, DNSKEY): NXDOMAIN — unless
  ``forward_single_label``.

Private reverse lookups and single labels go to the ``lan_upstreams``
instead when there are any (the router that knows the LAN's names; the
engine's ``route``): never to the public upstreams.  So do names under the
LAN's own domains, ``home.arpa`` (RFC 8375) and ``local`` (RFC 6762; also
the domain of many office networks): with ``lan_upstreams`` set they go
only there; without, they are forwarded as usual (the one upstream of a
home network is often the router itself, which knows them).

Negative answers carry an SOA in the authority section (owner: the zone,
or the name itself for a single label; TTL and MINIMUM ``TTL``) so
clients cache them (RFC 2308).
"""

import struct

from sentinel.dns.wire import (
    AAAA, CD, NOERROR, NS, NXDOMAIN, QR, RA, SOA, A, opt_record, rr_header,
)

DS, DNSKEY = 43, 48

TTL = 300
LOCALHOST, INVALID, PRIVATE_REVERSE, SINGLE_LABEL, LAN_DOMAIN = (
    "localhost", "invalid", "private-reverse", "single-label", "lan-domain")
# Types a single-label name (a top-level domain) is legitimately asked about.
TLD_TYPES = frozenset([SOA, NS, DS, DNSKEY])
# What the LAN's own DNS server (lan_upstreams, e.g. the router) may be asked.
FORWARDABLE = frozenset([PRIVATE_REVERSE, SINGLE_LABEL, LAN_DOMAIN])

_LOCALHOST = b"\x09localhost\x00"
_INVALID = b"\x07invalid\x00"
_IN_ADDR = b"\x07in-addr\x04arpa\x00"
_IP6 = b"\x03ip6\x04arpa\x00"
# The LAN's own domains: asked of the lan_upstreams only, when set.
_LAN_DOMAINS = (b"\x04home\x04arpa\x00", b"\x05local\x00")
_MNAME = b"\x08sentinel\x07invalid\x00"
_RNAME = b"\x0ahostmaster\x08sentinel\x07invalid\x00"


def _wire(text):
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\x00"


def _nibbles(hex_digits):
    return ".".join(reversed(hex_digits))


# RFC 6303 section 4 (4.1 IPv4, 4.2 IPv6), and RFC 6598's 100.64.0.0/10.
PRIVATE_REVERSE_ZONES = tuple(
    [f"{z}.in-addr.arpa" for z in (
        "10", "127", "0", "254.169", "168.192", "2.0.192", "100.51.198", "113.0.203",
        "255.255.255.255")]
    + [f"{i}.172.in-addr.arpa" for i in range(16, 32)]
    + [f"{i}.100.in-addr.arpa" for i in range(64, 128)]
    + [f"{_nibbles('0' * 32)}.ip6.arpa", f"{_nibbles('0' * 31 + '1')}.ip6.arpa",
       "d.f.ip6.arpa", "8.e.f.ip6.arpa", "9.e.f.ip6.arpa", "a.e.f.ip6.arpa",
       "b.e.f.ip6.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"])
_ZONES = frozenset(_wire(z) for z in PRIVATE_REVERSE_ZONES)


class LanNames:
    """Which names are answered here; the two switches are DNS settings."""

    def __init__(self, forward_private_reverse=False, forward_single_label=False):
        self.forward_private_reverse = forward_private_reverse
        self.forward_single_label = forward_single_label

    def classify(self, qname, qtype):
        """
        ``(kind, apex)`` for a name answered here (``apex``: where the zone's
        name starts in ``qname``), or None: forward as usual.  ``qname``:
        lowercase wire format.
        """
        n = qname[0] if qname else 0
        if n == 0:
            return None  # the root
        if qname.endswith(_LOCALHOST):
            apex = _label_at(qname, len(qname) - len(_LOCALHOST))
            if apex is not None:
                return LOCALHOST, apex
        if qname.endswith(_INVALID):
            apex = _label_at(qname, len(qname) - len(_INVALID))
            if apex is not None:
                return INVALID, apex
        if qname[n + 1:n + 2] == b"\x00":
            if self.forward_single_label or qtype in TLD_TYPES:
                return None
            return SINGLE_LABEL, 0
        for domain in _LAN_DOMAINS:
            if qname.endswith(domain):
                apex = _label_at(qname, len(qname) - len(domain))
                if apex is not None:
                    return LAN_DOMAIN, apex
        if not self.forward_private_reverse and (
                qname.endswith(_IN_ADDR) or qname.endswith(_IP6)):
            i = 0
            while qname[i]:
                if qname[i:] in _ZONES:
                    return PRIVATE_REVERSE, i
                i += qname[i] + 1
        return None


def _label_at(qname, offset):
    """``offset`` if a label starts there (not inside another label), else None."""
    i = 0
    while i < offset:
        i += qname[i] + 1
    return offset if i == offset else None


def _soa(owner, ttl):
    rdata = _MNAME + _RNAME + struct.pack("!IIIII", 1, 3600, 600, 86400, ttl)
    return rr_header(SOA, ttl, len(rdata), owner) + rdata


def answer(q, kind, apex, ttl=TTL):
    """The reply to query ``q`` (L{sentinel.dns.wire.Query}) for ``classify``'s result."""
    owner = struct.pack("!H", 0xC000 | (12 + apex))  # the zone's name inside the question
    answers, authority, rcode = b"", b"", NXDOMAIN
    an = ns = 0
    qtype = q.qtype
    if kind == LOCALHOST:
        rcode = NOERROR
        if qtype == A:
            answers, an = rr_header(A, ttl, 4) + b"\x7f\x00\x00\x01", 1
        elif qtype == AAAA:
            answers, an = rr_header(AAAA, ttl, 16) + b"\x00" * 15 + b"\x01", 1
        elif qtype == SOA and apex == 0:
            answers, an = _soa(owner, ttl), 1
        else:
            authority, ns = _soa(owner, ttl), 1
    elif kind == PRIVATE_REVERSE and apex == 0:  # the zone itself exists (empty)
        rcode = NOERROR
        if qtype == SOA:
            answers, an = _soa(owner, ttl), 1
        else:
            authority, ns = _soa(owner, ttl), 1
    else:
        authority, ns = _soa(owner, ttl), 1
    ar = 1 if q.edns else 0
    header = bytes([QR | q.rd, RA | (CD if q.cd else 0) | rcode]) + struct.pack("!HHHH", 1, an, ns, ar)
    out = q.id + header + q.question + answers + authority
    return out + opt_record(q.do) if q.edns else out
