"""
The query pipeline, in one place and in this order, for UDP and TCP alike:

    access (ACL, rate limit, loop guard) -> parse (fast path, or the
    twisted.names slow path) -> policy decision -> local answer (block,
    rewrite, RFC 8482 ANY, names that never leave the LAN: L{lan}) | cache
    | forwarder -> reply -> stats, query log

``handle(data, addr, port, cmsg)`` is called by the listeners; ``port``
sends replies (``port.send(reply, addr, cmsg)``; ``port.drop(addr)`` when
there is none) and tells whether it is TCP.  Nothing here touches a
socket, so the pipeline is tested with fake ports and a Clock.
"""

from twisted.logger import Logger

from sentinel.dns import lan, local
from sentinel.dns.access import DENIED, SLIP, Access
from sentinel.dns.answer import parse_response, truncated
from sentinel.dns.cache import Cache
from sentinel.dns.chase import Chaser
from sentinel.dns.decision import (
    ALLOW, BLOCK, LOG_ALLOWED, LOG_BLOCKED, LOG_CACHED, LOG_FORWARDED, LOG_LOCAL,
    LOG_SHADOW_BLOCKED, PASS_DECISION, REWRITE,
)
from sentinel.dns.forwarder import Forwarder
from sentinel.dns.slowpath import NotImplementedOpcode, parse_unusual
from sentinel.dns.stats import DnsStats
from sentinel.dns.wire import (
    ANY, AXFR, BADVERS, CH, IN, IXFR, REFUSED, SERVFAIL, Garbage, Malformed, Unusual,
    parse_query,
)

log = Logger()

PROBE_NAME = b"\x05probe\x08sentinel\x07invalid\x00"
LOOPBACK_PREFIXES = ("127.", "::1", "::ffff:127.")


def duration_ms(now, t0):
    """How long a query took, for the query log; never negative (the clock may step back)."""
    d = (now - t0) * 1000.0
    return d if d > 0.0 else 0.0


class Engine:
    def __init__(self, clock, policy_source, querylog, cache=None, access=None, stats=None,
                 timeout=1.5):
        self.clock = clock
        self.policy_source = policy_source
        self.querylog = querylog
        self.cache = cache if cache is not None else Cache()
        self.access = access if access is not None else Access()
        self.stats = stats if stats is not None else DnsStats()
        self.forwarder = Forwarder(clock, self._accept, self._resolved, timeout)
        # The upstreams for LAN-only names (lan_upstreams), e.g. the router.
        self.lan_forwarder = Forwarder(clock, self._accept, self._resolved, timeout)
        self.forwarders = (self.forwarder, self.lan_forwarder)
        self.blocker = local.Blocker()
        self.lan = lan.LanNames()
        self.chaser = Chaser(self)
        self.loop_ports = set()  # local ports of our upstream UDP sockets
        self.stats.cache = self.cache
        self.stats.access = self.access
        self.stats.forwarder = self.forwarder

    # -- entry point ---------------------------------------------------------

    def handle(self, data, addr, port, cmsg, checked=False):
        """``checked``: the fast path already applied the access checks."""
        stats = self.stats
        now = self.clock.seconds()
        ip = addr[0]
        if not checked:
            verdict = self.access.check(ip, now)
            if verdict:
                return self._refuse_access(verdict, data, addr, port, cmsg)
        if addr[1] in self.loop_ports and not port.tcp and self._is_loop(ip, port, cmsg):
            return self._loop(data, addr, port, cmsg)
        try:
            q = parse_query(data)
        except Unusual:
            try:
                q = parse_unusual(data)
            except NotImplementedOpcode:
                return self._reply(port, addr, cmsg, local.notimp(data), 4)
            except Malformed:
                stats.formerr += 1
                return self._reply(port, addr, cmsg, local.formerr(data), 1)
            except Garbage:
                stats.drop("garbage")
                return port.drop(addr)
        except Malformed:
            stats.formerr += 1
            return self._reply(port, addr, cmsg, local.formerr(data), 1)
        except Garbage:
            stats.drop("garbage")
            return port.drop(addr)
        if port.tcp:
            limit = 0
        else:
            limit = q.udp_size
        if q.qclass != IN:
            if q.qclass == CH and q.qname == PROBE_NAME:
                return port.send(local.probe_answer(q), addr, cmsg)
            self._count(port)
            return self._local(q, ip, port, addr, cmsg, REFUSED, now)
        if limit:
            stats.queries_udp += 1
        else:
            stats.queries_tcp += 1
        if q.version:
            return self._reply(port, addr, cmsg, local.error(q, BADVERS), BADVERS)
        qtype = q.qtype
        if qtype == AXFR or qtype == IXFR:
            return self._local(q, ip, port, addr, cmsg, REFUSED, now)
        try:
            decision = self.policy_source.current.decide(ip, q.qname, qtype)
        except Exception:
            log.failure("policy decide() failed; answering as if not filtered")
            decision = PASS_DECISION
        self.dispatch(q, decision, ip, port, addr, cmsg, limit, now)

    def dispatch(self, q, decision, ip, port, addr, cmsg, limit, now, missed=False):
        """
        Answer a parsed, counted, decided query (the fast path joins here;
        ``missed``: it already looked in the cache and found nothing fresh).
        """
        stats = self.stats
        qtype = q.qtype
        action = decision.action
        stats.decisions[action] += 1
        if action == BLOCK:
            reply = self.blocker.answer(q, decision)
            self._send(port, reply, addr, cmsg)
            self.querylog.record(now, ip, decision.client_name, q.qname, qtype, LOG_BLOCKED,
                                 decision.reason, "", reply[3] & 0xF, 0.0)
            return
        if action == REWRITE:
            return self.chaser.rewrite(q, decision, ip, port, addr, cmsg, limit, now)
        if decision.shadow:
            stats.shadow += 1
            logname, reason = LOG_SHADOW_BLOCKED, decision.shadow
        else:
            logname = LOG_ALLOWED if action == ALLOW else None
            reason = decision.reason
        if qtype == ANY:
            reply = local.minimal_any(q)
            self._send(port, reply, addr, cmsg)
            self.querylog.record(now, ip, decision.client_name, q.qname, qtype,
                                 logname or LOG_LOCAL, reason, "", 0, 0.0)
            return
        found, forwarder = self.route(q.qname, qtype)
        if found is not None:  # never forwarded, so never in the cache either
            reply = lan.answer(q, *found)
            self._send(port, reply, addr, cmsg)
            self.querylog.record(now, ip, decision.client_name, q.qname, qtype, LOG_LOCAL,
                                 "local:" + found[0], "", reply[3] & 0xF, 0.0)
            return
        entry = None if missed else self.cache.get(q.key, now)
        if entry is not None:
            stats.cache_hits += 1
            self._send(port, entry.render(q, entry.body_at(now), limit), addr, cmsg)
            self.querylog.record(now, ip, decision.client_name, q.qname, qtype,
                                 logname or LOG_CACHED, reason, "", entry.rcode, 0.0)
            return
        stats.cache_misses += 1
        waiter = (port, addr, cmsg, q, limit, now, ip, decision.client_name, logname, reason)
        if not forwarder.resolve(q.key, q.qname + q.question[-4:], q.flags, waiter):
            stats.drop("overload")
            self._answer_failed(waiter, None, now)

    def route(self, qname, qtype):
        """
        (lan classification, None): answer here with L{lan.answer}; or
        (None, forwarder): the upstreams to ask — the LAN upstreams for a
        private reverse lookup, a single label or a name under ``home.arpa``
        or ``local`` when there are any.
        """
        found = self.lan.classify(qname, qtype)
        if found is None:
            return None, self.forwarder
        if found[0] in lan.FORWARDABLE and self.lan_forwarder.upstreams:
            return None, self.lan_forwarder
        if found[0] == lan.LAN_DOMAIN:  # no LAN upstreams: the usual ones know them
            return None, self.forwarder
        return found, None

    # -- outcomes --------------------------------------------------------------

    def watch_clock(self, steps):
        """
        Rebase on every wall-clock step ``steps`` (a L{ClockSteps}) finds;
        the forwarders' timeout sweeps ask it to check first, so a step
        forward is rebased before their deadlines look due.
        """
        steps.listeners.append(self.clock_stepped)
        for forwarder in self.forwarders:
            forwarder.check_clock = steps.check

    def clock_stepped(self, step):
        """
        The wall clock stepped (L{sentinel.dns.clocksteps}): cached answers
        keep their TTLs, upstream timeouts and back-offs their time left.
        """
        self.cache.shift(step)
        for forwarder in self.forwarders:
            forwarder.rebase(step)

    def _accept(self, data, qend, inflight):
        answer = parse_response(
            data, qend, self.cache.min_ttl, self.cache.max_ttl, self.cache.max_negative_ttl,
            show_ad=bool(inflight.flags & 5), cd=bool(inflight.flags & 2))
        answer.stamp(self.clock.seconds())
        return answer

    def _resolved(self, inflight, answer, upstream):
        now = self.clock.seconds()
        if answer is None:
            stale = self.cache.stale(inflight.key, now)
            for waiter in inflight.waiters:
                try:
                    self._answer_failed(waiter, stale, now)
                except Exception:
                    self._waiter_failed(waiter)
            return
        self.cache.put(inflight.key, answer, now)
        body = answer.body_at(now)
        text = upstream.text
        record = self.querylog.record
        for waiter in inflight.waiters:
            port, addr, cmsg, q, limit, t0, ip, name, logname, reason = waiter
            # One waiter that fails (a bug in rendering for its query, in a
            # rewrite chase finishing its reply) must not cost the others
            # their answer: try costs nothing until something raises.
            try:
                self._send(port, answer.render(q, body, limit), addr, cmsg)
                record(now, ip, name, q.qname, q.qtype, logname or LOG_FORWARDED, reason, text,
                       answer.rcode, duration_ms(now, t0))
            except Exception:
                self._waiter_failed(waiter)

    def _waiter_failed(self, waiter):
        """Answering one waiting client raised (a bug): logged; it gets SERVFAIL if possible."""
        log.failure("answering {name!r} failed", name=waiter[3].qname)
        port, addr, cmsg, q = waiter[:4]
        try:
            self._send(port, local.servfail(q), addr, cmsg)
        except Exception:
            pass

    def _answer_failed(self, waiter, stale, now):
        port, addr, cmsg, q, limit, t0, ip, name, logname, reason = waiter
        if stale is not None:
            self.stats.cache_stale += 1
            reply = stale.render(q, stale.body_stale(), limit)
            if q.edns:
                reply = _with_ede(reply, local.EDE_STALE)
                if limit and len(reply) > limit:  # the EDE option did not fit
                    reply = _with_ede(truncated(q, stale.rcode, stale.ad), local.EDE_STALE)
            rcode, logname = stale.rcode, logname or LOG_CACHED
        else:
            self.stats.servfail += 1
            reply, rcode, logname = local.servfail(q), SERVFAIL, logname or LOG_FORWARDED
        self._send(port, reply, addr, cmsg)
        self.querylog.record(now, ip, name, q.qname, q.qtype, logname, reason, "", rcode,
                             duration_ms(now, t0))

    # -- local replies -------------------------------------------------------------

    def _count(self, port):
        if port.tcp:
            self.stats.queries_tcp += 1
        else:
            self.stats.queries_udp += 1

    def _send(self, port, reply, addr, cmsg):
        stats = self.stats
        stats.rcodes[reply[3] & 0xF] += 1  # also counts it as answered
        sendto = port.sendto  # a plain UDP socket's own sendto (see UdpPort)
        if sendto is None:
            return port.send(reply, addr, cmsg)
        try:
            sendto(reply, addr)
        except OSError:
            stats.drop("send_error")

    def _reply(self, port, addr, cmsg, reply, rcode):
        self._send(port, reply, addr, cmsg)

    def _local(self, q, ip, port, addr, cmsg, rcode, now):
        self._send(port, local.error(q, rcode), addr, cmsg)
        self.querylog.record(now, ip, "", q.qname, q.qtype, LOG_LOCAL, "", "", rcode, 0.0)

    def _refuse_access(self, verdict, data, addr, port, cmsg):
        stats = self.stats
        if verdict == DENIED:
            stats.drop("acl")
            return port.drop(addr)
        stats.rate_limited += 1
        if port.tcp:
            try:
                q = parse_query(data)
            except (Garbage, Malformed, Unusual):
                return port.drop(addr)
            return self._reply(port, addr, cmsg, local.error(q, REFUSED), REFUSED)
        if verdict == SLIP:
            try:
                q = parse_query(data)
            except (Garbage, Malformed, Unusual):
                stats.drop("rate_limit")
                return port.drop(addr)
            return self._send(port, truncated(q), addr, cmsg)
        stats.drop("rate_limit")
        return port.drop(addr)

    def _is_loop(self, ip, port, cmsg):
        return ip.startswith(LOOPBACK_PREFIXES) or ip == port.local_address(cmsg)

    def _loop(self, data, addr, port, cmsg):
        """One of our own upstream queries came back to us: refuse, don't recurse."""
        self.stats.drop("loop")
        log.warn("forwarding loop: an upstream is this server itself ({ip}); refusing",
                 ip=addr[0])
        try:
            q = parse_query(data)
        except (Garbage, Malformed, Unusual):
            return port.drop(addr)
        self._send(port, local.error(q, REFUSED), addr, cmsg)


def _with_ede(reply, code):
    """Add an EDE option to the OPT record that ends ``reply``."""
    from sentinel.dns.wire import ede_option

    option = ede_option(code)
    rdlen = (reply[-2] << 8 | reply[-1]) + len(option)
    return reply[:-2] + rdlen.to_bytes(2, "big") + option


