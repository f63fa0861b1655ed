"""
DNS settings through the real API of a real daemon (admin token), applied
to the running server without a restart.
"""

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import create_token, setup_admin
from tests.dns.clients import ZONE, addresses, query
from tests.support.daemon import Daemon
from tests.support.upstream import Upstream


class SettingsE2ETests(SynchronousTestCase):
    def setUp(self):
        self.first = Upstream.start(self, ZONE)
        self.second = Upstream.start(self, dict(ZONE, **{"www.example.test": {
            "A": ["198.18.0.20"]}}))
        self.d = Daemon(self, upstreams=[self.first.spec]).start()
        token = create_token(self.d, setup_admin(self.d))
        self.auth = {"Authorization": f"Bearer {token}"}

    def put(self, body):
        return self.d.request("PUT", "/api/dns/settings", body, headers=self.auth)

    def test_upstreams_switch_live_and_flush_the_cache(self):
        port = self.d.dns_port
        self.assertEqual(addresses(query(port, "www.example.test")), ["198.18.0.10"])
        r = self.put({"upstreams": [self.second.spec]})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(addresses(query(port, "www.example.test")), ["198.18.0.20"])
        self.assertEqual(self.second.count("www.example.test"), 1)
        status = self.d.request("GET", "/api/dns/status", headers=self.auth).json()
        self.assertEqual([u["spec"] for u in status["upstreams"]], [self.second.spec])
        self.assertTrue(status["healthy"])

    def test_other_changes_keep_the_cache(self):
        port = self.d.dns_port
        query(port, "www.example.test")
        r = self.put({"cache_max_ttl": 600, "rate_limit_qps": 500, "blocked_ttl": 30})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["cache_max_ttl"], 600)
        query(port, "www.example.test")
        self.assertEqual(self.first.count("www.example.test"), 1)  # still cached

    def test_restricting_networks_keeps_loopback_and_health(self):
        port = self.d.dns_port
        r = self.put({"allowed_networks": ["10.0.0.0/8"]})
        self.assertEqual(r.status, 200, r.body)
        # Loopback is always allowed (the self-probe and local tools need it).
        self.assertEqual(query(port, "www.example.test").rcode(), dns.rcode.NOERROR)
        self.assertEqual(self.d.get("/api/health").status, 200)

    def test_bad_settings_are_refused(self):
        r = self.put({"upstreams": [f"127.0.0.1:{self.d.dns_port}"]})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["details"][0]["field"], "upstreams.0")
        self.assertEqual(self.d.request("PUT", "/api/dns/settings", {"cache_size": 5}).status,
                         401)
