"""Fakes for pipeline tests: ports, policies, query logs, an engine harness."""

import dns.message
import dns.rrset
from twisted.internet.task import Clock

from sentinel.dns.decision import PASS_DECISION, Decision, PolicySource
from sentinel.dns.engine import Engine
from sentinel.dns.forwarder import Upstream
from sentinel.dns.upstreamspec import parse_upstream
from sentinel.dns.wire import name_to_text
from tests.dns.test_cache_forwarder import FakeTransport

CLIENT = ("192.168.1.20", 40000)


class FakePort:
    sendto = None

    def __init__(self, tcp=False, local="192.168.1.2"):
        self.tcp = tcp
        self.sent = []
        self.dropped = 0
        self.local = local

    def send(self, data, addr, cmsg):
        self.sent.append((data, addr, cmsg))

    def drop(self, addr):
        self.dropped += 1

    def local_address(self, cmsg):
        return self.local

    def last(self):
        return dns.message.from_wire(self.sent[-1][0])


class FakePolicy:
    """Decisions by name text ("ads.example.") or a default."""

    def __init__(self, decisions=None, default=PASS_DECISION):
        self.decisions = dict(decisions or {})
        self.default = default
        self.calls = []

    def decide(self, client_ip, qname, qtype):
        self.calls.append((client_ip, qname, qtype))
        return self.decisions.get(name_to_text(qname), self.default)


class ListLog:
    def __init__(self):
        self.rows = []

    def record(self, *row):
        self.rows.append(row)

    def last(self):
        keys = ("ts", "client_ip", "client_name", "qname", "qtype", "decision", "reason",
                "upstream", "rcode", "duration_ms")
        return dict(zip(keys, self.rows[-1]))


class Harness:
    def __init__(self, policy=None, upstreams=1, clock=None):
        self.clock = clock if clock is not None else Clock()
        self.clock.advance(10000)
        self.policy = policy or FakePolicy()
        self.log = ListLog()
        self.engine = Engine(self.clock, PolicySource(self.policy), self.log)
        self.transports = [FakeTransport() for _ in range(upstreams)]
        self.engine.forwarder.set_upstreams([
            Upstream(parse_upstream(f"127.0.0.1:{53000 + i}"), t,
                     self.engine.stats.upstream(f"127.0.0.1:{53000 + i}"))
            for i, t in enumerate(self.transports)])
        self.engine.forwarder.start()
        self.port = FakePort()

    def ask(self, name, rdtype="A", port=None, client=CLIENT, **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        (port or self.port).sent.clear()
        self.engine.handle(q.to_wire(), client, port or self.port, None)
        return q

    def upstream_answers(self, *rrs, rcode=0, authority=(), i=0, which=-1):
        attempt = self.transports[i].sent[which]
        q = dns.message.from_wire(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                  + attempt.question)
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        for rr in rrs:
            r.answer.append(dns.rrset.from_text(*rr))
        for rr in authority:
            r.authority.append(dns.rrset.from_text(*rr))
        attempt.answered(r.to_wire(), 12 + len(attempt.question))

    def reply(self, port=None):
        return (port or self.port).last()


def block(mode="nxdomain", ttl=10, reason="blocklist:1"):
    return Decision(1, reason=reason, block_mode=mode, ttl=ttl, client_name="laptop")
