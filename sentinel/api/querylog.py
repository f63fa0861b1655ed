"""
The query log: GET /api/query-logs (filters, newest first, paginated with
``before_id``) and DELETE /api/query-logs (clear this node's log; allowed
on a follower since the log is node-local).
"""

from sentinel.api.base import Reply, endpoint
from sentinel.dns.decision import (LOG_ALLOWED, LOG_BLOCKED, LOG_CACHED, LOG_FORWARDED,
                                   LOG_LOCAL, LOG_REWRITTEN, LOG_SHADOW_BLOCKED)
from sentinel.filtering.dnsnames import rcode_name, type_name
from sentinel.store import QueryLogFilter

DECISIONS = [LOG_ALLOWED, LOG_BLOCKED, LOG_REWRITTEN, LOG_CACHED, LOG_FORWARDED,
             LOG_SHADOW_BLOCKED, LOG_LOCAL]
QUERY = {
    "since": {"type": "number", "minimum": 0, "maximum": 1e11,
              "description": "from this time (epoch seconds)"},
    "until": {"type": "number", "minimum": 0, "maximum": 1e11,
              "description": "before this time"},
    "client": {"type": "string", "maxLength": 100,
               "description": "client IP, or part of the client name"},
    "domain": {"type": "string", "maxLength": 255, "description": "part of the name"},
    "decision": {"enum": DECISIONS},
    "before_id": {"type": "integer", "minimum": 1, "maximum": 2 ** 53,
                  "description": "next page: older rows"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
}
ROW = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "ts": {"type": "number"},
        "client_ip": {"type": "string"}, "client_name": {"type": "string"},
        "qname": {"type": "string"}, "qtype": {"type": "integer"},
        "qtype_name": {"type": "string"}, "decision": {"enum": DECISIONS},
        "reason": {"type": "string"}, "upstream": {"type": "string"},
        "rcode": {"type": ["integer", "null"]}, "rcode_name": {"type": "string"},
        "duration_ms": {"type": ["number", "null"]},
    },
}
PAGE = {
    "type": "object",
    "required": ["items", "next_before_id"],
    "properties": {"items": {"type": "array", "items": ROW},
                   "next_before_id": {"type": ["integer", "null"],
                                      "description": "pass as before_id for the next page"}},
}


class QueryLogApi:
    """service: the QueryLogService (flushed before reading so the log is current)."""

    def __init__(self, store, service):
        self.store = store
        self.service = service

    @endpoint("GET", "/api/query-logs", tag="query-log", query=QUERY, response=PAGE,
              summary="Logged queries, newest first")
    async def list_logs(self, call):
        q = call.query
        limit = q.get("limit", 100)
        await self.service.flush()
        rows = await self.store.query_logs(QueryLogFilter(
            since=q.get("since"), until=q.get("until"), client=q.get("client") or None,
            domain=q.get("domain") or None, decision=q.get("decision"),
            before_id=q.get("before_id"), limit=limit))
        items = []
        for r in rows:
            item = dict(r)
            item["client_name"] = item["client_name"] or ""
            item["reason"] = item["reason"] or ""
            item["upstream"] = item["upstream"] or ""
            item["qtype_name"] = type_name(item["qtype"])
            item["rcode_name"] = rcode_name(item["rcode"])
            items.append(item)
        more = len(rows) == limit
        return {"items": items, "next_before_id": rows[-1]["id"] if more and rows else None}

    @endpoint("DELETE", "/api/query-logs", tag="query-log", status=204,
              readonly_exempt=True, summary="Clear this node's query log")
    async def clear_logs(self, call):
        await self.service.clear()
        return Reply(204)
