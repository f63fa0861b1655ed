"""
Answers for REWRITE decisions, built with twisted.names message objects
(rewrites are local and comparatively rare, so clarity wins over bytes).

A rewrite's ``answers`` are ``((rrtype, value), ...)``:

- records of the asked type are the answer (owner: the name as asked);
- otherwise a CNAME is answered and its target chased by the server (the
  target goes through the policy again, then cache/upstreams), and the
  target's records are appended after the CNAME;
- otherwise NOERROR/NODATA with an SOA carrying the TTL (negative caching).

Values: A/AAAA an address, CNAME/PTR/NS a name, TXT text, MX
"PREFERENCE HOST".  TTL: ``decision.ttl``, or 300 when 0.
"""

from twisted.names import dns

from sentinel.dns.wire import CNAME, NOERROR, OPT, add_opt

DEFAULT_TTL = 300
MAX_CHAIN = 8


def ttl_of(decision):
    return decision.ttl if decision.ttl > 0 else DEFAULT_TTL


def _payload(rtype, value, ttl):
    value = str(value).strip()
    if rtype == dns.A:
        return dns.Record_A(value, ttl)
    if rtype == dns.AAAA:
        return dns.Record_AAAA(value, ttl)
    if rtype == dns.CNAME:
        return dns.Record_CNAME(value.rstrip(".").encode("idna"), ttl)
    if rtype == dns.PTR:
        return dns.Record_PTR(value.rstrip(".").encode("idna"), ttl)
    if rtype == dns.NS:
        return dns.Record_NS(value.rstrip(".").encode("idna"), ttl)
    if rtype == dns.TXT:
        raw = value.encode("utf-8")
        return dns.Record_TXT(*[raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""],
                              ttl=ttl)
    if rtype == dns.MX:
        pref, host = value.split(None, 1)
        return dns.Record_MX(int(pref), host.rstrip(".").encode("idna"), ttl)
    raise ValueError(f"unsupported rewrite type {rtype}")


def plan(decision, qtype, owner):
    """
    (records, cname_target): RRHeaders answering ``qtype`` for ``owner``
    (bytes, as asked), and the CNAME target (text) to chase, if any.
    Values that do not parse are skipped.
    """
    ttl = ttl_of(decision)
    same = [(t, v) for t, v in decision.answers if t == qtype]
    if not same and qtype != CNAME:
        cnames = [(t, v) for t, v in decision.answers if t == CNAME]
        if cnames:
            same = cnames[:1]
    records = []
    for rtype, value in same:
        try:
            payload = _payload(rtype, value, ttl)
            # Record_A/AAAA validate lazily; encode now to reject bad values.
            payload.encode(_Sink(), None)
        except (ValueError, TypeError, OSError, UnicodeError):
            continue
        records.append(dns.RRHeader(owner, rtype, dns.IN, ttl, payload))
    target = None
    if records and records[0].type == CNAME and qtype != CNAME:
        target = records[0].payload.name.name.decode("ascii", "replace")
    return records, target


class _Sink:
    def write(self, data):
        pass

    def tell(self):
        return 0


def compose(q, records, rcode=NOERROR, authority=(), limit=0):
    """Encode an answer for query ``q`` (a Query) with these RRHeaders."""
    owner = question_name(q.question)
    # maxSize=0: twisted.names would otherwise cut the message at 512 bytes,
    # inside a record, and set TC (the size limit is applied below).
    m = dns.Message(id=int.from_bytes(q.id, "big"), answer=1, recDes=q.rd, recAv=1,
                    rCode=rcode, maxSize=0, checkingDisabled=q.cd)
    m.queries = [dns.Query(owner, q.qtype, q.qclass)]
    m.answers = list(records)
    m.authority = list(authority)
    if not records and not authority and rcode == NOERROR:
        m.authority = [soa_rr(q, DEFAULT_TTL)]
    out = m.toStr()
    if q.edns:
        out = add_opt(out, q.do)
    if (limit and len(out) > limit) or len(out) > 65535:  # (65535: what TCP can frame)
        from sentinel.dns.answer import truncated

        return truncated(q, rcode)
    return out


def soa_rr(q, ttl):
    owner = question_name(q.question)
    return dns.RRHeader(owner, dns.SOA, dns.IN, ttl, dns.Record_SOA(
        b"blocked.sentinel.invalid", b"hostmaster.sentinel.invalid", 1, 3600, 600, 86400, ttl,
        ttl))


def question_name(question):
    """The name (bytes, dotted, as the client spelled it) of a wire question."""
    labels, i = [], 0
    while question[i]:
        n = question[i]
        labels.append(question[i + 1:i + 1 + n])
        i += n + 1
    return b".".join(labels)


def target_records(response):
    """(rcode, answers, authority) of an encoded answer, without OPT."""
    m = dns.Message()
    m.fromStr(response)
    authority = [rr for rr in m.authority if rr.type != OPT]
    return m.rCode, list(m.answers), authority
