"""
REWRITE decisions: answer the rewritten records, and when a rewrite is a
CNAME, chase its target for the client — the target goes through the
policy again (a blocked target blocks the answer, a rewritten one is
followed, up to 8 links), then — unless it is a name that never leaves
the LAN (L{sentinel.dns.lan}) — through the cache and the upstreams like
any query; the client gets the CNAME chain followed by the target's
records.
"""

from twisted.logger import Logger

from sentinel.dns import lan, rewrite
from sentinel.dns.decision import BLOCK, LOG_BLOCKED, LOG_REWRITTEN, REWRITE
from sentinel.dns.wire import IN, SERVFAIL, Query, name_from_text

log = Logger()


class _ChasePort:
    """Receives the target's answer and finishes the client's reply."""

    tcp = False
    sendto = None

    def __init__(self, chaser, ctx, chain):
        self.chaser, self.ctx, self.chain = chaser, ctx, chain

    def send(self, reply, addr, cmsg):
        self.chaser._finish(self.ctx, self.chain, reply)

    def drop(self, addr):
        self.chaser._finish(self.ctx, self.chain, None)

    def local_address(self, cmsg):
        return ""


class _Ctx:
    __slots__ = ("q", "decision", "ip", "port", "addr", "cmsg", "limit", "t0")

    def __init__(self, q, decision, ip, port, addr, cmsg, limit, t0):
        self.q, self.decision, self.ip = q, decision, ip
        self.port, self.addr, self.cmsg, self.limit, self.t0 = port, addr, cmsg, limit, t0


class Chaser:
    def __init__(self, engine):
        self.engine = engine

    def rewrite(self, q, decision, ip, port, addr, cmsg, limit, now):
        ctx = _Ctx(q, decision, ip, port, addr, cmsg, limit, now)
        owner = rewrite.question_name(q.question)
        records, target = rewrite.plan(decision, q.qtype, owner)
        if target is None:
            authority = () if records else [rewrite.soa_rr(q, rewrite.ttl_of(decision))]
            return self._send(ctx, rewrite.compose(q, records, authority=authority,
                                                    limit=limit), LOG_REWRITTEN)
        self._chase(ctx, list(records), target, 1)

    def _chase(self, ctx, chain, target, depth):
        engine, q = self.engine, ctx.q
        try:
            target_wire = name_from_text(target)
        except ValueError:
            return self._send(ctx, rewrite.compose(q, chain, limit=ctx.limit), LOG_REWRITTEN)
        try:
            decision = engine.policy_source.current.decide(ctx.ip, target_wire, q.qtype)
        except Exception:
            log.failure("policy decide() failed while chasing a rewrite")
            decision = None
        if decision is not None and decision.action == BLOCK:
            reply = engine.blocker.answer(q, decision)
            return self._send(ctx, reply, LOG_BLOCKED, decision.reason)
        if decision is not None and decision.action == REWRITE:
            if depth >= rewrite.MAX_CHAIN:
                return self._send(ctx, rewrite.compose(q, chain, SERVFAIL, limit=ctx.limit),
                                  LOG_REWRITTEN)
            records, next_target = rewrite.plan(decision, q.qtype, target.rstrip(".").encode())
            chain.extend(records)
            if next_target is None:
                return self._send(ctx, rewrite.compose(q, chain, limit=ctx.limit), LOG_REWRITTEN)
            return self._chase(ctx, chain, next_target, depth + 1)
        question = target_wire + q.question[-4:]
        sub = Query(b"\x00\x00", 1, target_wire, question, q.qtype, IN, False, q.do, 0,
                    q.flags, 0, q.cd, q.ad)
        found, forwarder = engine.route(target_wire, q.qtype)
        if found is not None:  # a name that never leaves the LAN (localhost, ...)
            return self._finish(ctx, chain, lan.answer(sub, *found))
        now = engine.clock.seconds()
        entry = engine.cache.get(sub.key, now)
        if entry is not None:
            return self._finish(ctx, chain, entry.render(sub, entry.body_at(now), 0))
        port = _ChasePort(self, ctx, chain)
        waiter = (port, ctx.addr, None, sub, 0, now, ctx.ip, ctx.decision.client_name, None,
                  ctx.decision.reason)
        if not forwarder.resolve(sub.key, question, sub.flags, waiter):
            self._finish(ctx, chain, None)

    def _finish(self, ctx, chain, target_reply):
        q = ctx.q
        if target_reply is None:
            reply = rewrite.compose(q, chain, SERVFAIL, limit=ctx.limit)
        else:
            try:
                rcode, answers, authority = rewrite.target_records(target_reply)
            except Exception:
                rcode, answers, authority = SERVFAIL, [], []
            reply = rewrite.compose(q, chain + answers, rcode,
                                    authority=() if answers else authority, limit=ctx.limit)
        self._send(ctx, reply, LOG_REWRITTEN)

    def _send(self, ctx, reply, logname, reason=None):
        engine = self.engine
        engine._send(ctx.port, reply, ctx.addr, ctx.cmsg)
        now = engine.clock.seconds()
        engine.querylog.record(
            now, ctx.ip, ctx.decision.client_name, ctx.q.qname, ctx.q.qtype, logname,
            reason if reason is not None else ctx.decision.reason, "", reply[3] & 0xF,
            max(0.0, now - ctx.t0) * 1000.0)  # the clock may step back
