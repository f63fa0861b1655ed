"""
The Prometheus text exposition (format 0.0.4) for ``GET /metrics``: the DNS
counters (from ``w.dns_stats.snapshot()``, see sentinel/dns/stats.py), the
query log, the policy and the blocklists.
"""

import math


class Exposition:
    def __init__(self):
        self.lines = []
        self._declared = set()

    def metric(self, name, kind, help_text, value, labels=None):
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {help_text}")
            self.lines.append(f"# TYPE {name} {kind}")
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self):
        return "\n".join(self.lines) + "\n"


def _labels(labels):
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _escape(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if math.isnan(value):
            return "NaN"
        return repr(value)
    return str(int(value))


DNS_COUNTERS = [
    ("queries_udp", "sentinel_dns_queries_total", {"transport": "udp"}, "DNS queries received"),
    ("queries_tcp", "sentinel_dns_queries_total", {"transport": "tcp"}, "DNS queries received"),
    ("answered", "sentinel_dns_answers_total", None, "DNS replies sent"),
    ("cache_hits", "sentinel_dns_cache_hits_total", None, "answers served from the cache"),
    ("cache_misses", "sentinel_dns_cache_misses_total", None, "cache misses"),
    ("cache_stale", "sentinel_dns_cache_stale_total", None, "stale answers served"),
    ("cache_evictions", "sentinel_dns_cache_evictions_total", None, "cache evictions"),
    ("coalesced", "sentinel_dns_coalesced_total", None, "misses joined to an in-flight query"),
    ("rate_limited", "sentinel_dns_rate_limited_total", None, "queries over a client's limit"),
    ("rate_limit_shared", "sentinel_dns_rate_limit_shared_total", None,
     "queries from addresses the full rate-limit table had no room for (one shared bucket)"),
    ("formerr", "sentinel_dns_formerr_total", None, "malformed queries answered FORMERR"),
    ("servfail", "sentinel_dns_servfail_total", None, "SERVFAIL answers"),
]
DNS_GAUGES = [
    ("cache_entries", "sentinel_dns_cache_entries", "entries in the DNS cache"),
    ("cache_bytes", "sentinel_dns_cache_bytes", "bytes the DNS cache's entries are counted for"),
    ("inflight", "sentinel_dns_inflight", "upstream queries in flight"),
    ("tcp_connections", "sentinel_dns_tcp_connections", "open DNS-over-TCP connections"),
]


def render_dns(out, snap):
    for key, name, labels, help_text in DNS_COUNTERS:
        if key in snap:
            out.metric(name, "counter", help_text, snap[key], labels)
    for key, name, help_text in DNS_GAUGES:
        if key in snap:
            out.metric(name, "gauge", help_text, snap[key])
    for decision, n in sorted((snap.get("decisions") or {}).items()):
        out.metric("sentinel_dns_decisions_total", "counter",
                   "policy decisions by action", n, {"action": decision})
    for rcode, n in sorted((snap.get("rcodes") or {}).items()):
        out.metric("sentinel_dns_responses_total", "counter", "replies by RCODE", n,
                   {"rcode": rcode})
    for reason, n in sorted((snap.get("dropped") or {}).items()):
        out.metric("sentinel_dns_dropped_total", "counter", "queries dropped, by reason", n,
                   {"reason": reason})
    for spec, up in sorted((snap.get("upstreams") or {}).items()):
        lab = {"upstream": spec}
        out.metric("sentinel_upstream_queries_total", "counter", "queries sent upstream",
                   up.get("queries", 0), lab)
        out.metric("sentinel_upstream_answers_total", "counter", "answers from upstream",
                   up.get("answers", 0), lab)
        for kind, n in sorted((up.get("errors") or {}).items()):
            out.metric("sentinel_upstream_errors_total", "counter", "upstream failures", n,
                       dict(lab, kind=kind))
        out.metric("sentinel_upstream_healthy", "gauge", "1 if the upstream is usable",
                   bool(up.get("healthy", True)), lab)
        for le, count in up.get("latency_buckets") or ():
            out.metric("sentinel_upstream_latency_seconds_bucket", "histogram",
                       "upstream answer latency", count, dict(lab, le=repr(float(le))))
        out.metric("sentinel_upstream_latency_seconds_bucket", "histogram",
                   "upstream answer latency", up.get("latency_count", 0), dict(lab, le="+Inf"))
        out.metric("sentinel_upstream_latency_seconds_sum", "histogram",
                   "upstream answer latency", float(up.get("latency_sum", 0.0)), lab)
        out.metric("sentinel_upstream_latency_seconds_count", "histogram",
                   "upstream answer latency", up.get("latency_count", 0), lab)


def render(dns_snapshot=None, querylog=None, engine=None, now=0.0):
    out = Exposition()
    if dns_snapshot:
        render_dns(out, dns_snapshot)
    if querylog is not None:
        for decision, n in sorted(querylog.decisions.items()):
            out.metric("sentinel_queries_total", "counter", "answered queries by log decision",
                       n, {"decision": decision})
        out.metric("sentinel_querylog_buffered", "gauge", "query-log rows waiting to be stored",
                   querylog.waiting())
        out.metric("sentinel_querylog_written_total", "counter", "query-log rows stored",
                   querylog.written)
        out.metric("sentinel_querylog_dropped_total", "counter",
                   "query-log rows lost (buffer full, or malformed)", querylog.dropped)
        out.metric("sentinel_querylog_write_failures_total", "counter",
                   "failed query-log writes", querylog.failures)
    if engine is not None:
        policy = engine.policy
        info = policy.info if policy is not None else {}
        out.metric("sentinel_policy_revision", "gauge", "configuration revision enforced",
                   policy.revision if policy is not None else 0)
        out.metric("sentinel_policy_builds_total", "counter", "policy snapshots installed",
                   engine.builds)
        out.metric("sentinel_policy_build_seconds", "gauge",
                   "duration of the last snapshot build", float(engine.last_build_seconds))
        until = info.get("paused_until")
        out.metric("sentinel_protection_paused", "gauge", "1 while filtering is paused",
                   until is not None and until > now)
        for list_id, data in sorted(engine.config.entities.get("blocklist", {}).items()):
            if not isinstance(data, dict):
                continue
            content = data.get("content") if isinstance(data.get("content"), dict) else {}
            status = data.get("status") if isinstance(data.get("status"), dict) else {}
            lab = {"id": list_id, "name": str(data.get("name", ""))}
            out.metric("sentinel_blocklist_domains", "gauge", "names in a blocklist",
                       content.get("domains", 0), lab)
            out.metric("sentinel_blocklist_ok", "gauge", "1 if the last refresh worked",
                       status.get("ok") is not False, lab)
    return out.text()
