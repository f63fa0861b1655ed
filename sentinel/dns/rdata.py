"""
Is a record in an upstream answer well formed as clients decode it?
(pure, no I/O; L{sentinel.dns.answer.parse_response} walks the records
and asks).

- L{check_name}: a name, compressed or not, with pointers only to labels
  of names already checked.
- L{RDATA_CHECKS}: per record type, a function ``(data, start, end,
  names)`` that raises Malformed when the RDATA between ``start`` and
  ``end`` does not have the layout its RFC gives it: HTTPS and SVCB (RFC
  9460; browsers ask HTTPS for every page load, and a resolver library
  that cannot decode one record rejects the whole reply), the DNSSEC
  types (RFC 4034,
  RFC 5155; a validator downstream decodes them) and CAA (RFC 8659).  The
  names in their RDATA must not be compressed (RFC 3597 section 4, RFC
  4034, RFC 9460 section 2.2), which clients enforce.  The usual types (A,
  AAAA, names, TXT, SOA) are checked inline in parse_response, on the hot
  path; these only cost something in answers that hold them.
"""

from sentinel.dns.wire import Malformed


def check_name(data, i, end, names):
    """
    Index past the name at ``i``, which must lie before ``end``, if it is
    well formed as clients parse it (RFC 1035 4.1.4): labels of at most 63
    bytes, at most 255 bytes in all; raises Malformed otherwise.  A
    compression pointer must point to where a label of a name already
    checked starts (``names``: label start -> length of the name from
    there; this name's labels are added): not into the header (ours is not
    the upstream's), nor forwards, nor into other bytes — a TTL, which we
    count down, or RDATA we do not look into — whose meaning as a name
    would change in our reply or that no client could decode.
    """
    starts = []
    total = 0
    try:
        while True:
            if i >= end:
                raise Malformed("name runs past its record")
            n = data[i]
            if n < 64:
                starts.append(i)
                starts.append(total)
                total += n + 1
                if n == 0:
                    after = i + 1
                    break
                i += n + 1
            elif n >= 0xC0:
                if i + 1 >= end:
                    raise Malformed("truncated pointer")
                target = (n & 0x3F) << 8 | data[i + 1]
                rest = names.get(target)
                if rest is None:
                    if 12 not in names:  # the question's labels, on first need
                        _question_labels(data, names)
                        rest = names.get(target)
                    if rest is None:
                        raise Malformed("compression pointer to no name")
                total += rest
                after = i + 2
                break
            else:
                raise Malformed("bad label")
    except IndexError:
        raise Malformed("truncated name") from None
    if total > 255:
        raise Malformed("name too long")
    for k in range(0, len(starts), 2):
        names[starts[k]] = total - starts[k + 1]
    return after


def _question_labels(data, names):
    """Add the question name's labels to ``names`` (the transport checked it)."""
    i = 12
    n = data[i]
    starts = []
    while n:
        starts.append(i)
        i += n + 1
        n = data[i]
    total = i + 1 - 12
    for at in starts:
        names[at] = total - (at - 12)
    names[i] = 1


def plain_name(data, i, end, names):
    """
    Index past the uncompressed name at ``i`` (before ``end``).  Its labels
    become pointer targets like any other checked name's: a client follows
    a later pointer into them as into any bytes of the message.
    """
    j = i
    while True:
        if j >= end:
            raise Malformed("name runs past its record")
        n = data[j]
        if n == 0:
            break
        if n > 63:
            raise Malformed("compressed or bad name in RDATA")
        j += n + 1
    return check_name(data, i, end, names)  # its length, and its labels as targets


def _at_least(size):
    def check(data, start, end, names):
        if end - start < size:
            raise Malformed("RDATA too short")
    return check


def _type_bitmap(data, j, end):
    """NSEC/NSEC3 type bitmaps (RFC 4034 4.1.2): increasing windows of 1-32 octets."""
    last = -1
    while j < end:
        if j + 2 > end:
            raise Malformed("truncated type bitmap")
        window, n = data[j], data[j + 1]
        if window <= last or not 0 < n <= 32 or j + 2 + n > end or not data[j + 1 + n]:
            raise Malformed("bad type bitmap")
        last = window
        j += 2 + n


def _nsec(data, start, end, names):
    """Next domain name, uncompressed (RFC 4034 4.1.1), and the type bitmap."""
    _type_bitmap(data, plain_name(data, start, end, names), end)


def _nsec3(data, start, end, names):
    """
    Algorithm, flags, iterations, salt (length-prefixed), next hashed owner
    (length-prefixed, at least 1 byte: RFC 5155 3.2), type bitmap.
    """
    j = start + 5 + (data[start + 4] if start + 4 < end else 0)
    if j >= end or not data[j]:
        raise Malformed("bad NSEC3")
    j += 1 + data[j]
    if j > end:
        raise Malformed("bad NSEC3")
    _type_bitmap(data, j, end)


def _nsec3param(data, start, end, names):
    """Algorithm, flags, iterations, salt (length-prefixed), nothing else (RFC 5155 4.2)."""
    if start + 5 > end or start + 5 + data[start + 4] != end:
        raise Malformed("bad NSEC3PARAM")


def _rrsig(data, start, end, names):
    """18 bytes of fields, the signer's name uncompressed (RFC 4034 3.1.7), the signature."""
    plain_name(data, start + 18, end, names)


# RFC 4034 5.1 and the digest type registry: a digest of the wrong length
# for its type can never match; type 0 is reserved.
_DS_DIGEST = {1: 20, 2: 32, 3: 32, 4: 48}


def _ds(data, start, end, names):
    """Key tag, algorithm, digest type, digest (RFC 4034 5.1)."""
    if end - start < 4:
        raise Malformed("RDATA too short")
    kind = data[start + 3]
    size = _DS_DIGEST.get(kind)
    if kind == 0 or size is not None and end - start != 4 + size:
        raise Malformed("bad DS digest")


def _caa(data, start, end, names):
    """Flags, tag length (at least 1), an alphanumeric tag, the value (RFC 8659 4.1)."""
    if start + 2 > end:
        raise Malformed("RDATA too short")
    n = data[start + 1]
    tag = data[start + 2:start + 2 + n]
    if not n or start + 2 + n > end or not tag.isalnum():
        raise Malformed("bad CAA tag")


def _svc_length(check):
    def value(data, start, end):
        if not check(end - start):
            raise Malformed("bad SvcParamValue length")
    return value


def _svc_mandatory(data, start, end):
    """Keys, strictly increasing, never 0 (mandatory itself): RFC 9460 section 8."""
    if start == end or (end - start) & 1:
        raise Malformed("bad mandatory")
    last = 0
    for j in range(start, end, 2):
        key = data[j] << 8 | data[j + 1]
        if key <= last:
            raise Malformed("bad mandatory")
        last = key


def _svc_alpn(data, start, end):
    """Length-prefixed protocol ids, none empty, exactly filling the value (RFC 9460 7.1.1)."""
    j = start
    while j < end:
        if not data[j]:
            raise Malformed("empty alpn id")
        j += 1 + data[j]
    if j != end or start == end:
        raise Malformed("bad alpn")


def _svc_ech(data, start, end):
    """An ECHConfigList: a 2-byte length of the rest, at least 4 bytes (RFC 9849 4)."""
    if end - start < 6 or data[start] << 8 | data[start + 1] != end - start - 2:
        raise Malformed("bad ech")


# The SvcParamValues with a wire format of their own (RFC 9460 7, RFC 9540);
# clients must treat an RR with one malformed as malformed (RFC 9460 2.2).
_SVC_VALUES = {
    0: _svc_mandatory,
    1: _svc_alpn,
    2: _svc_length(lambda n: n == 0),  # no-default-alpn
    3: _svc_length(lambda n: n == 2),  # port
    4: _svc_length(lambda n: n and n % 4 == 0),  # ipv4hint
    5: _svc_ech,
    6: _svc_length(lambda n: n and n % 16 == 0),  # ipv6hint
    8: _svc_length(lambda n: n == 0),  # ohttp
}


def _svcb(data, start, end, names):
    """
    SvcPriority, TargetName (uncompressed), SvcParams: keys strictly
    increasing, each value within the RDATA and in its key's format, the
    keys listed in ``mandatory`` present (RFC 9460 2.2, 8).  SvcParams in
    AliasMode (priority 0) are to be ignored by clients (2.4.2), so they
    are not an error here.
    """
    j = plain_name(data, start + 2, end, names)
    keys = []
    mandatory = None  # where the mandatory key's value starts
    while j < end:
        if j + 4 > end:
            raise Malformed("truncated SvcParam")
        key = data[j] << 8 | data[j + 1]
        value_end = j + 4 + (data[j + 2] << 8 | data[j + 3])
        if keys and key <= keys[-1]:
            raise Malformed("SvcParamKeys not strictly increasing")
        if value_end > end:
            raise Malformed("SvcParamValue runs past the RDATA")
        check = _SVC_VALUES.get(key)
        if check is not None:
            check(data, j + 4, value_end)
        if key == 0:
            mandatory = j + 4
        keys.append(key)
        j = value_end
    if mandatory is not None:
        for k in range(mandatory, mandatory + (data[mandatory - 2] << 8 | data[mandatory - 1]), 2):
            if data[k] << 8 | data[k + 1] not in keys:
                raise Malformed("a mandatory SvcParamKey is missing")


DS, RRSIG, NSEC, DNSKEY, NSEC3, NSEC3PARAM, SVCB, HTTPS, CAA = (
    43, 46, 47, 48, 50, 51, 64, 65, 257)

RDATA_CHECKS = {
    SVCB: _svcb,
    HTTPS: _svcb,
    DS: _ds,
    RRSIG: _rrsig,
    NSEC: _nsec,
    DNSKEY: _at_least(4),  # flags, protocol, algorithm, key (RFC 4034 2.1)
    NSEC3: _nsec3,
    NSEC3PARAM: _nsec3param,
    CAA: _caa,
}
