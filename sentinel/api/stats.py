"""
Statistics: /api/metrics/summary, /api/metrics/timeseries,
/api/metrics/top-domains, /api/metrics/top-blocked, /api/metrics/top-clients
(from this node's query log, for a time window; default the last 24 hours)
and the Prometheus text endpoint GET /metrics.
"""

from sentinel.api.base import Raw, endpoint, validation_error
from sentinel.filtering import prometheus, statsdb

DAY = 86400.0
WINDOW = {
    "since": {"type": "number", "minimum": 0, "maximum": 1e11,
              "description": "window start (epoch seconds); default now-24h"},
    "until": {"type": "number", "minimum": 0, "maximum": 1e11,
              "description": "window end; default now"},
}
TOP_QUERY = dict(WINDOW, limit={"type": "integer", "minimum": 1, "maximum": 100})
SERIES_QUERY = dict(WINDOW, bucket={"type": "integer", "minimum": 10, "maximum": 86400,
                                    "description": "seconds per point (default: ~48 points)"})
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
SUMMARY = {
    "type": "object",
    "properties": {
        "since": {"type": "number"}, "until": {"type": "number"},
        "total": {"type": "integer"}, "blocked": {"type": "integer"},
        "blocked_share": {"type": "number", "description": "blocked / total, 0..1"},
        "by_decision": COUNTS, "clients": {"type": "integer"},
        "avg_duration_ms": {"type": ["number", "null"]},
    },
}
SERIES = {
    "type": "object",
    "properties": {
        "since": {"type": "number"}, "until": {"type": "number"}, "bucket": {"type": "integer"},
        "points": {"type": "array", "items": {"type": "object", "properties": {
            "ts": {"type": "number"}, "total": {"type": "integer"},
            "blocked": {"type": "integer"}, "by_decision": COUNTS}}},
    },
}
TOP = {
    "type": "object",
    "properties": {"since": {"type": "number"}, "until": {"type": "number"},
                   "items": {"type": "array", "items": {"type": "object", "properties": {
                       "name": {"type": "string"}, "count": {"type": "integer"},
                       "client_name": {"type": "string"}}}}},
}


class StatsApi:
    """
    querylog_service: flushed before reading; dns_stats: object with
    snapshot() (sentinel/dns/stats.py) or None; engine: the PolicyEngine.
    """

    def __init__(self, store, clock, querylog_service, engine=None, dns_stats=None):
        self.store = store
        self.clock = clock
        self.service = querylog_service
        self.engine = engine
        self.dns_stats = dns_stats

    def _window(self, query):
        until = query.get("until")
        until = self.clock.seconds() if until is None else until
        since = query.get("since")
        since = until - DAY if since is None else since
        if since >= until:
            raise validation_error("since must be before until", "since")
        return since, until

    async def _read(self, fn, *args):
        await self.service.flush()
        return await self.store.db.run(fn, *args, write=False)

    @endpoint("GET", "/api/metrics/summary", tag="metrics", query=WINDOW, response=SUMMARY,
              summary="Totals and blocked share for a time window", errors=(400,))
    async def summary(self, call):
        since, until = self._window(call.query)
        counts = await self._read(statsdb.totals, since, until)
        clients, avg = await self.store.db.run(statsdb.averages, since, until, write=False)
        total = sum(counts.values())
        blocked = counts.get(statsdb.BLOCKED, 0)
        return {"since": since, "until": until, "total": total, "blocked": blocked,
                "blocked_share": round(blocked / total, 6) if total else 0.0,
                "by_decision": counts, "clients": clients,
                "avg_duration_ms": round(avg, 3) if avg is not None else None}

    @endpoint("GET", "/api/metrics/timeseries", tag="metrics", query=SERIES_QUERY,
              response=SERIES, summary="Queries per time bucket", errors=(400,))
    async def timeseries(self, call):
        since, until = self._window(call.query)
        bucket = call.query.get("bucket") or max(10, int((until - since) / 48))
        if (until - since) / bucket > 5000:
            raise validation_error("too many points; use a larger bucket", "bucket")
        rows = await self._read(statsdb.timeseries, since, until, bucket)
        points = {}
        for start, decision, n in rows:
            p = points.setdefault(start, {"ts": start, "total": 0, "blocked": 0,
                                          "by_decision": {}})
            p["total"] += n
            p["by_decision"][decision] = n
            if decision == statsdb.BLOCKED:
                p["blocked"] += n
        filled = []
        for i in range(int((until - since + bucket - 1e-9) // bucket)):
            start = since + i * bucket
            filled.append(points.get(start) or {"ts": start, "total": 0, "blocked": 0,
                                                 "by_decision": {}})
        return {"since": since, "until": until, "bucket": bucket, "points": filled}

    async def _top(self, kind, query):
        since, until = self._window(query)
        rows = await self._read(statsdb.top, kind, since, until, query.get("limit", 10))
        return {"since": since, "until": until,
                "items": [{"name": n, "count": c, "client_name": cn} for n, c, cn in rows]}

    @endpoint("GET", "/api/metrics/top-domains", tag="metrics", query=TOP_QUERY, response=TOP,
              summary="Most queried names", errors=(400,))
    async def top_domains(self, call):
        return await self._top("domains", call.query)

    @endpoint("GET", "/api/metrics/top-blocked", tag="metrics", query=TOP_QUERY, response=TOP,
              summary="Most blocked names", errors=(400,))
    async def top_blocked(self, call):
        return await self._top("blocked", call.query)

    @endpoint("GET", "/api/metrics/top-clients", tag="metrics", query=TOP_QUERY, response=TOP,
              summary="Clients with the most queries", errors=(400,))
    async def top_clients(self, call):
        return await self._top("clients", call.query)

    @endpoint("GET", "/metrics", tag="metrics", content_type="text/plain",
              summary="Prometheus metrics (text format 0.0.4)")
    async def prometheus(self, call):
        snapshot = self.dns_stats.snapshot() if self.dns_stats is not None else None
        text = prometheus.render(snapshot, self.service.querylog, self.engine,
                                 self.clock.seconds())
        return Raw(text.encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8")
