"""Query log and statistics over the API, and the Prometheus endpoint."""

from twisted.trial.unittest import TestCase

from tests.filtering.apihelp import ApiHarness
from tests.support import pg
from tests.filtering.helpers import wire

NOW = 1_700_000_000.0


class FakeDnsStats:
    def snapshot(self):
        return {"queries_udp": 7, "queries_tcp": 1, "answered": 8, "cache_hits": 3,
                "cache_entries": 2, "decisions": {"pass": 5, "block": 3},
                "rcodes": {"NOERROR": 5, "NXDOMAIN": 3}, "dropped": {"garbage": 1},
                "upstreams": {"127.0.0.1:53": {
                    "queries": 4, "answers": 4, "errors": {"timeout": 1},
                    "latency_sum": 0.02, "latency_count": 4,
                    "latency_buckets": [[0.001, 1], [0.01, 4]], "healthy": True}}}


class QueryLogApiTests(TestCase):
    timeout = 15
    postgres = False

    async def setUp(self):
        self.api = await ApiHarness().start(self, now=NOW, dns_stats=FakeDnsStats(),
                                            postgres=self.postgres)
        log = self.api.querylog
        rows = [
            (NOW - 3600, "192.168.1.5", "tv", "ads.example.com", 1, "blocked", "blocklist:1"),
            (NOW - 3000, "192.168.1.5", "tv", "ads.example.com", 28, "blocked", "rule:2"),
            (NOW - 2000, "192.168.1.6", "", "www.example.org", 1, "forwarded", ""),
            (NOW - 1000, "192.168.1.6", "", "www.example.org", 1, "cached", ""),
            (NOW - 500, "192.168.1.7", "nas", "nas.home", 1, "rewritten", "rewrite:1"),
            (NOW - 100, "192.168.1.5", "tv", "t.example.net", 1, "shadow-blocked",
             "blocklist:3"),
            (NOW - 90000, "192.168.1.5", "tv", "old.example", 1, "allowed", "rule:1"),
        ]
        for ts, ip, name, qname, qtype, decision, reason in rows:
            log.record(ts, ip, name, wire(qname), qtype, decision, reason,
                       "127.0.0.1:53" if decision == "forwarded" else "", 0, 1.5)

    async def get(self, path):
        r = await self.api.call("GET", path)
        self.assertEqual(r.code, 200, r.body)
        return r.json()

    async def test_rows_filters_and_pages(self):
        page = await self.get("/api/query-logs?limit=4")
        self.assertEqual([r["qname"] for r in page["items"]],
                         ["old.example", "t.example.net", "nas.home", "www.example.org"])
        first = page["items"][1]
        self.assertEqual((first["client_name"], first["qtype_name"], first["decision"],
                          first["reason"], first["rcode_name"]),
                         ("tv", "A", "shadow-blocked", "blocklist:3", "NOERROR"))
        rest = await self.get(f"/api/query-logs?limit=4&before_id={page['next_before_id']}")
        self.assertEqual(len(rest["items"]), 3)
        self.assertIsNone(rest["next_before_id"])
        blocked = await self.get("/api/query-logs?decision=blocked")
        self.assertEqual([r["reason"] for r in blocked["items"]], ["rule:2", "blocklist:1"])
        self.assertEqual(len((await self.get("/api/query-logs?client=TV"))["items"]), 4)
        self.assertEqual(len((await self.get("/api/query-logs?client=192.168.1.6"))["items"]),
                         2)
        self.assertEqual(len((await self.get("/api/query-logs?domain=EXAMPLE.o"))["items"]), 2)
        window = await self.get(f"/api/query-logs?since={NOW - 3600}&until={NOW - 1000}")
        self.assertEqual(len(window["items"]), 3)
        r = await self.api.call("GET", "/api/query-logs?decision=nope")
        self.assertEqual(r.code, 400)

    async def test_clear(self):
        r = await self.api.call("DELETE", "/api/query-logs")
        self.assertEqual(r.code, 204)
        self.assertEqual((await self.get("/api/query-logs"))["items"], [])

    async def test_summary_timeseries_and_tops(self):
        s = await self.get("/api/metrics/summary")
        self.assertEqual((s["total"], s["blocked"], s["clients"]), (6, 2, 3))
        self.assertAlmostEqual(s["blocked_share"], 2 / 6, places=5)
        self.assertEqual(s["by_decision"]["shadow-blocked"], 1)
        series = await self.get(f"/api/metrics/timeseries?since={NOW - 3600}&until={NOW}"
                                f"&bucket=1800")
        self.assertEqual([(p["total"], p["blocked"]) for p in series["points"]],
                         [(3, 2), (3, 0)])
        top = await self.get("/api/metrics/top-domains?limit=2")
        self.assertEqual([(i["name"], i["count"]) for i in top["items"]],
                         [("ads.example.com", 2), ("www.example.org", 2)])
        top = await self.get("/api/metrics/top-blocked")
        self.assertEqual([(i["name"], i["count"]) for i in top["items"]],
                         [("ads.example.com", 2)])
        top = await self.get("/api/metrics/top-clients")
        self.assertEqual([(i["name"], i["count"], i["client_name"]) for i in top["items"]],
                         [("192.168.1.5", 3, "tv"), ("192.168.1.6", 2, ""),
                          ("192.168.1.7", 1, "nas")])
        r = await self.api.call("GET", f"/api/metrics/summary?since={NOW}&until={NOW - 1}")
        self.assertEqual(r.code, 400)

    async def test_prometheus_text(self):
        r = await self.api.call("GET", "/metrics")
        self.assertEqual(r.code, 200)
        self.assertTrue(r.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
        text = r.body.decode()
        for line in [
            'sentinel_dns_queries_total{transport="udp"} 7',
            'sentinel_dns_responses_total{rcode="NXDOMAIN"} 3',
            'sentinel_upstream_latency_seconds_bucket{le="+Inf",upstream="127.0.0.1:53"} 4',
            'sentinel_queries_total{decision="blocked"} 2',
            "sentinel_querylog_dropped_total 0",
            "sentinel_protection_paused 0",
            "# TYPE sentinel_dns_queries_total counter",
        ]:
            self.assertIn(line, text.splitlines())
        self.assertEqual(text.count("# TYPE sentinel_dns_queries_total"), 1)
        r = await self.api.call("GET", "/metrics", auth=False)
        self.assertEqual(r.code, 401)


class QueryLogApiPostgresTests(QueryLogApiTests):
    """The same SQL on PostgreSQL (statistics use dialect-specific bucketing)."""

    postgres = True
    skip = pg.skip_reason()
