"""
The hot path in front of L{sentinel.dns.engine.Engine}: the listeners call
``FastPath.handle``, which answers the common cases inline, by byte
indexing, without building a L{Query} object:

- a client that is allowed and not rate limited, a standard query (one
  question of class IN, optionally one EDNS version 0 OPT record), and
- a BLOCK decision (a prebuilt answer with the ID and question spliced
  in), or a PASS/ALLOW decision answered from the cache (stored record
  bytes with the TTLs counted down once per second, not per query).

Clients repeat the same query bytes (everything after the 2-byte ID) over
and over, so what follows from those bytes alone is remembered by them:
the parsed shape of the query (name, type, flags, cache key, ...), and the
blocked answer for a given decision.  A repeat then costs a dict lookup
instead of the label walk, the checks and the blocked-answer template.
Both memos are bounded (cleared when full) and hold nothing that depends
on the client, the clock or the cache.

A cache miss gets its Query object and joins the engine at
``Engine.dispatch``; anything else (access refusals, unusual shapes,
malformed packets, rewrites, ANY) goes through ``Engine.handle`` as if the
fast path did not exist.  ``tests/dns/test_fastpath.py`` checks that both
paths give byte-identical answers.
"""

from sentinel.dns.answer import truncated
from sentinel.dns.decision import ALLOW, BLOCK, LOG_ALLOWED, LOG_BLOCKED, LOG_CACHED, PASS
from sentinel.dns.wire import (
    AXFR, IXFR, KEY_FLAGS, ONE_QUESTION, ONE_QUESTION_OPT, OPT_DO, OPT_NODO, Query,
)

_IN = b"\x00\x01"
_OPT_HEAD = b"\x00\x00\x29"
_SLOW_TYPES = frozenset([255, AXFR, IXFR, 41])  # ANY, zone transfers, OPT
# Entries per memo (query shapes, blocked answers); each is cleared when
# full, so random names cannot grow them.  Only queries up to
# MEMO_QUERY_BYTES are remembered (a usual one is < 100 bytes; an OPT
# record may carry up to 64 KiB of options over TCP): a few MB for usual
# queries, ~20 MB at most with maximum-length ones.
SHAPES_LIMIT = 8192
MEMO_QUERY_BYTES = 512


class FastPath:
    def __init__(self, engine):
        self.engine = engine
        # Long-lived objects the engine mutates in place (never replaces).
        self._unlimited = engine.access.unlimited
        self._loop_ports = engine.loop_ports
        self._seconds = engine.clock.seconds
        self._cache = engine.cache._data
        self._policy = engine.policy_source
        self._stats = engine.stats
        self._decisions = engine.stats.decisions
        self._blocker = engine.blocker
        self._shapes = {}  # query bytes after the ID -> _parse(data) (see there)
        self._blocked = {}  # query bytes after the ID -> (decision, answer after the ID)

    def handle(self, data, addr, port, cmsg):
        engine = self.engine
        ip = addr[0]
        now = self._seconds()
        if ip not in self._unlimited:
            verdict = engine.access.check(ip, now)
            if verdict:
                return engine._refuse_access(verdict, data, addr, port, cmsg)
        if addr[1] in self._loop_ports:
            return engine.handle(data, addr, port, cmsg, True)
        # Clients repeat the same query bytes (all but the ID) over and
        # over: its parse is remembered, so a repeat costs one dict lookup
        # instead of the label walk and the checks (~0.5 us).
        rest = data[2:]
        shape = self._shapes.get(rest)
        if shape is None:
            shape = self._parse(data, rest)
            if shape is None:
                return engine.handle(data, addr, port, cmsg, True)
            seen = False
        else:
            seen = True
        qname, qtype, question, key, rd, edns, do, limit, flags, variant, opt = shape
        stats = self._stats
        tcp = port.tcp
        if tcp:
            limit = 0
            stats.queries_tcp += 1
        else:
            stats.queries_udp += 1
        try:
            decision = self._policy.current.decide(ip, qname, qtype)
        except Exception:
            return engine.handle(data, addr, port, cmsg, True)  # logs it, answers unfiltered
        action = decision.action
        if action == BLOCK:
            self._decisions[BLOCK] += 1
            # A blocked answer depends on the query bytes after the ID and
            # on the decision (immutable; the policy hands out the same
            # object for the same rule or list): remembered for both, from
            # the second time these bytes come (their shape was
            # remembered): query bytes seen once cost no memo insert.
            known = self._blocked.get(rest) if seen else None
            if known is not None and known[0] is decision:
                reply = data[:2] + known[1]
            else:
                reply = self._blocker.answer_raw(data[:2], rd | flags & 2, question, qtype,
                                                 edns, do, decision)
                if seen and len(rest) <= MEMO_QUERY_BYTES:
                    blocked = self._blocked
                    if len(blocked) >= SHAPES_LIMIT:
                        blocked.clear()
                    blocked[rest] = (decision, reply[2:])
            logged = LOG_BLOCKED
            rcode = reply[3] & 0xF
        else:
            entry = None
            missed = False
            if (action == PASS or action == ALLOW) and not decision.shadow:
                cache = self._cache
                entry = cache.get(key)
                missed = entry is None
            if entry is None or now >= entry.expires:
                q = self._query(data, rd, qname, question, qtype, edns, do, limit, flags)
                return engine.dispatch(q, decision, ip, port, addr, cmsg, limit, now, missed)
            cache.move_to_end(key)
            self._decisions[action] += 1
            stats.cache_hits += 1
            age = int(now) - entry.stored
            body = entry._body if age == entry._age else entry.body_at(now)
            reply = b"".join((data[:2], entry.hdr[variant], question, body, opt))
            if limit and len(reply) > limit:
                reply = truncated(self._query(data, rd, qname, question, qtype, edns, do,
                                              limit, flags), entry.rcode, entry.ad)
            logged = LOG_ALLOWED if action == ALLOW else LOG_CACHED
            rcode = entry.rcode
        # What Engine._send does, inline (one Python call less per answer).
        stats.rcodes[reply[3] & 0xF] += 1  # also counts it as answered
        sendto = port.sendto
        if sendto is None:
            port.send(reply, addr, cmsg)
        else:
            try:
                sendto(reply, addr)
            except OSError:
                stats.drop("send_error")
        engine.querylog.record(now, ip, decision.client_name, qname, qtype, logged,
                               decision.reason, "", rcode, 0.0)

    def _parse(self, data, rest):
        """
        A standard query's shape, (qname, qtype, question, cache key, RD,
        EDNS, DO, UDP size limit, flags, header variant, OPT record of a
        cached answer), remembered by ``rest``, its bytes after the ID (if
        no longer than MEMO_QUERY_BYTES); None
        for anything the general path must see (nothing is remembered
        then).  Everything in it depends only on those bytes, which is what
        makes remembering it safe.
        """
        if len(data) < 17 or data[2] & 0xF8:
            return None
        counts = data[4:12]
        if counts == ONE_QUESTION:
            edns = 0
        elif counts == ONE_QUESTION_OPT:
            edns = 1
        else:
            return None
        # The question name, label by label (no compression in a question).
        i = 12
        try:
            n = data[12]
            while n:
                if n > 63:
                    return None
                i += n + 1
                n = data[i]
        except IndexError:
            return None
        i += 1
        qend = i + 4
        size = len(data)
        if i > 267 or qend > size or data[i + 2:qend] != _IN:
            return None
        do = 0
        if edns:
            if (data[qend:qend + 3] != _OPT_HEAD or qend + 11 > size or data[qend + 6]
                    or qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != size):
                return None
            limit = data[qend + 3] << 8 | data[qend + 4]
            limit = 512 if limit < 512 else (1232 if limit > 1232 else limit)
            do = data[qend + 7] >> 7
        elif qend != size:
            return None
        else:
            limit = 512
        qtype = data[i] << 8 | data[i + 1]
        if qtype in _SLOW_TYPES:
            return None
        qname = data[12:i].lower()
        question = data[12:qend]
        flags = do | (data[3] >> 3) & 6  # DO | CD << 1 | AD << 2
        rd = data[2] & 1
        shape = (qname, qtype, question, b"".join((qname, question[-4:], KEY_FLAGS[flags])),
                 rd, edns, do, limit, flags, rd | edns << 1,
                 (OPT_DO if do else OPT_NODO) if edns else b"")
        if len(rest) <= MEMO_QUERY_BYTES:
            shapes = self._shapes
            if len(shapes) >= SHAPES_LIMIT:
                shapes.clear()
            shapes[rest] = shape
        return shape

    @staticmethod
    def _query(data, rd, qname, question, qtype, edns, do, limit, flags):
        return Query(data[:2], rd, qname, question, qtype, 1, bool(edns), do,
                     limit or 512, flags, 0, flags >> 1 & 1, flags >> 2 & 1)
