"""
DNS counters (``w.dns_stats``), incremented on the hot path as plain
attribute/dict updates and read by the metrics renderer through
L{DnsStats.snapshot}.

Snapshot shape (all values are counts since start unless noted)::

    {
      "queries": int,            # queries received (UDP + TCP), probes excluded
      "queries_udp": int, "queries_tcp": int,
      "answered": int,           # replies sent
      "cache_hits": int, "cache_misses": int, "cache_stale": int,
      "cache_entries": int,      # current (gauge)
      "cache_bytes": int,        # what they are counted for (gauge; bounded, cache.MAX_BYTES)
      "cache_evictions": int,
      "coalesced": int,          # misses that joined an identical in-flight query
      "inflight": int,           # current (gauge)
      "rate_limited": int,       # queries over the per-client limit
      "rate_limit_shared": int,  # queries from addresses the full rate-limit table had
                                 # no room for (they share one bucket; access.py)
      "dropped": {reason: int},  # acl, rate_limit, garbage, loop, overload, send_error,
                                 # tcp_connections, tcp_per_client, tcp_unread
      "formerr": int, "servfail": int,
      "decisions": {"pass": n, "allow": n, "block": n, "rewrite": n, "shadow": n},
      "rcodes": {"NOERROR": n, ...},  # replies sent, by header RCODE
      "upstreams": {spec: {"queries": n, "answers": n,
                            "errors": {"timeout": n, "servfail": n, ...},
                            "latency_sum": seconds, "latency_count": n,
                            "latency_buckets": [[le_seconds, cumulative], ...],
                            "healthy": bool}},
      "tcp_connections": int,    # current (gauge)
    }
"""

import bisect

RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
               5: "REFUSED", 16: "BADVERS"}
DECISION_NAMES = ("pass", "block", "rewrite", "allow")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class UpstreamStats:
    __slots__ = ("queries", "answers", "errors", "latency_sum", "latency_count", "buckets",
                 "healthy")

    def __init__(self):
        self.queries = 0
        self.answers = 0
        self.errors = {}
        self.latency_sum = 0.0
        self.latency_count = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.healthy = True

    def latency(self, seconds):
        if seconds < 0.0:  # the clock stepped back while the query was out
            seconds = 0.0
        self.latency_sum += seconds
        self.latency_count += 1
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def snapshot(self):
        cumulative, running = [], 0
        for le, n in zip(LATENCY_BUCKETS, self.buckets):
            running += n
            cumulative.append([le, running])
        return {
            "queries": self.queries, "answers": self.answers, "errors": dict(self.errors),
            "latency_sum": self.latency_sum, "latency_count": self.latency_count,
            "latency_buckets": cumulative, "healthy": self.healthy,
        }


class DnsStats:
    def __init__(self):
        self.queries_udp = 0
        self.queries_tcp = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.cache_stale = 0
        self.coalesced = 0
        self.rate_limited = 0
        self.formerr = 0
        self.servfail = 0
        self.dropped = {}
        self.decisions = [0, 0, 0, 0]  # indexed by Decision.action
        self.shadow = 0
        # Replies sent, by the RCODE in the reply header (their sum is
        # ``answered``: one counter per reply, not two).
        self.rcodes = [0] * 16
        self.upstreams = {}
        # Gauges, read through callables set by the wiring.
        self.cache = None
        self.forwarder = None
        self.access = None
        self.tcp = None

    @property
    def answered(self):
        """Replies sent."""
        return sum(self.rcodes)

    def drop(self, reason):
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def upstream(self, text):
        stats = self.upstreams.get(text)
        if stats is None:
            stats = self.upstreams[text] = UpstreamStats()
        return stats

    def snapshot(self):
        return {
            "queries": self.queries_udp + self.queries_tcp,
            "queries_udp": self.queries_udp,
            "queries_tcp": self.queries_tcp,
            "answered": self.answered,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_stale": self.cache_stale,
            "cache_entries": len(self.cache) if self.cache is not None else 0,
            "cache_bytes": self.cache.bytes if self.cache is not None else 0,
            "cache_evictions": self.cache.evictions if self.cache is not None else 0,
            "coalesced": self.coalesced,
            "inflight": len(self.forwarder.inflight) if self.forwarder is not None else 0,
            "rate_limited": self.rate_limited,
            "rate_limit_shared": getattr(self.access, "overflowed", 0),
            "dropped": dict(self.dropped),
            "formerr": self.formerr,
            "servfail": self.servfail,
            "decisions": dict(zip(DECISION_NAMES, self.decisions)) | {"shadow": self.shadow},
            "rcodes": {RCODE_NAMES.get(k, str(k)): v for k, v in enumerate(self.rcodes) if v},
            "upstreams": {k: v.snapshot() for k, v in self.upstreams.items()},
            "tcp_connections": self.tcp.connections if self.tcp is not None else 0,
        }
