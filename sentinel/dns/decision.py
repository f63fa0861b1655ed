"""
The seam between DNS serving and filtering policy.

The DNS server asks the current policy snapshot for a L{Decision} before it
looks at its cache or forwards anything::

    decision = policy_source.current.decide(client_ip, qname, qtype)

``policy_source.current`` is an immutable, compiled snapshot (see
L{IPolicy}); the filtering subsystem swaps it atomically when the
configuration revision changes.  ``decide`` does no I/O and must be cheap
(it runs for every query).

After answering, the server reports the query to the query log with
L{IQueryLog.record}, which only appends to an in-memory buffer.
"""

import attr
from zope.interface import Attribute, Interface

# Decision.action values
PASS = 0  # not filtered: answer from cache or upstream
BLOCK = 1  # answer per block_mode (nxdomain / null / refused)
REWRITE = 2  # answer locally with ``answers``
ALLOW = 3  # explicitly allowed by a rule: like PASS, logged as "allowed"

# Query-log decision names
LOG_ALLOWED = "allowed"
LOG_BLOCKED = "blocked"
LOG_REWRITTEN = "rewritten"
LOG_CACHED = "cached"
LOG_FORWARDED = "forwarded"
LOG_SHADOW_BLOCKED = "shadow-blocked"
# Answered by the DNS server itself without policy or upstream: REFUSED for
# zone transfers and non-IN classes, RFC 8482 minimal answers to ANY.
LOG_LOCAL = "local"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Decision:
    action: int
    # Why, for the query log and metrics: "blocklist:<id>", "rule:<id>",
    # "client:<id>:paused", "rewrite:<id>", ...
    reason: str = ""
    # BLOCK: "nxdomain", "null" or "refused"; TTL of the blocked answer.
    block_mode: str = "nxdomain"
    ttl: int = 0
    # REWRITE: ((rrtype, value), ...) e.g. ((1, "192.168.1.10"),) or
    # ((5, "nas.home."),) for a CNAME the server chases for the client.
    answers: tuple = ()
    # Set when a shadow-mode list would have blocked: answered normally,
    # logged as "shadow-blocked" with this reason.
    shadow: str = ""
    # The client's configured name, for the query log ("" if unknown).
    client_name: str = ""


PASS_DECISION = Decision(PASS)


class IPolicy(Interface):
    def decide(client_ip, qname, qtype):
        """
        @param client_ip: the source address as a string ("192.168.1.5",
            "fe80::1"), as the socket reported it.
        @param qname: the query name in lowercase DNS wire format, with the
            terminating zero byte (b"\\x03ads\\x07example\\x03com\\x00").
        @param qtype: the query type (int).
        @return: a L{Decision}.
        """


class IPolicySource(Interface):
    current = Attribute("The IPolicy to use for the next query.")


class IQueryLog(Interface):
    def record(ts, client_ip, client_name, qname, qtype, decision, reason,
               upstream, rcode, duration_ms):
        """
        Remember one answered query.  O(1), never blocks, never raises.
        qname is wire format (as given to decide); decision is one of the
        LOG_* names; upstream is the upstream spec text or "".
        """


class _PassAll:
    def decide(self, client_ip, qname, qtype):
        return PASS_DECISION


@attr.s
class PolicySource:
    """
    Holds the current policy; filtering replaces ``current`` atomically (a
    single attribute assignment) when it has compiled a new snapshot.  Until
    then every query passes.
    """

    current = attr.ib(factory=_PassAll)


class NullQueryLog:
    def record(self, *args):
        pass
