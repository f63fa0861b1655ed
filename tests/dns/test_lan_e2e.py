"""
Names that never leave the LAN, against a real daemon whose own loopback
upstream records every query it receives (and would answer each of these
names, so a forwarded query would also show in the answer): localhost,
invalid, private reverse zones and single labels are answered by the
daemon, public names still go upstream, rewrites win, and the two
settings send the names upstream again.
"""

import dns.rcode
import dns.rdatatype
from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import create_token, setup_admin
from tests.dns.clients import addresses, query
from tests.support.daemon import Daemon
from tests.support.upstream import Upstream

PRIVATE_REVERSE = [
    "4.3.2.10.in-addr.arpa", "1.0.16.172.in-addr.arpa", "1.0.31.172.in-addr.arpa",
    "5.1.168.192.in-addr.arpa", "1.0.0.127.in-addr.arpa", "1.1.254.169.in-addr.arpa",
    "1.1.64.100.in-addr.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa",
]
ZONE = dict(
    {name: {"PTR": ["leaked.example.test"]} for name in PRIVATE_REVERSE},
    **{
        "localhost": {"A": ["198.18.0.66"]},
        "app.localhost": {"A": ["198.18.0.66"]},
        "x.invalid": {"A": ["198.18.0.66"]},
        "printer": {"A": ["198.18.0.66"]},
        "www.example.test": {"A": ["198.18.0.10"]},
        "10.0.18.198.in-addr.arpa": {"PTR": ["www.example.test"]},
    })


class LanNamesE2ETests(SynchronousTestCase):
    def setUp(self):
        self.up = Upstream.start(self, ZONE)
        self.d = Daemon(self, upstreams=[self.up.spec]).start()
        token = create_token(self.d, setup_admin(self.d))
        self.auth = {"Authorization": f"Bearer {token}"}

    def api(self, method, path, body, status=200):
        r = self.d.request(method, path, body, headers=self.auth)
        self.assertEqual(r.status, status, r.body)
        return r.json()

    def ask(self, name, rdtype="A"):
        return query(self.d.dns_port, name, rdtype)

    def test_never_forwarded(self):
        for name in ("localhost", "app.localhost"):
            self.assertEqual(addresses(self.ask(name)), ["127.0.0.1"])
            self.assertEqual(addresses(self.ask(name, "AAAA")), ["::1"])
        for name in ["x.invalid", "printer"] + PRIVATE_REVERSE:
            r = self.ask(name, "PTR" if name.endswith("arpa") else "A")
            self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN, name)
            self.assertEqual(r.authority[0].rdtype, dns.rdatatype.SOA, name)  # cacheable
        self.assertEqual(self.up.queries, [])
        # public names (reverse ones too) and TLD questions still go upstream
        self.assertEqual(addresses(self.ask("www.example.test")), ["198.18.0.10"])
        r = self.ask("10.0.18.198.in-addr.arpa", "PTR")
        self.assertEqual(r.answer[0][0].to_text(), "www.example.test.")
        self.ask("test", "SOA")
        self.assertEqual(sorted(q[1] for q in self.up.queries),
                         ["10.0.18.198.in-addr.arpa", "test", "www.example.test"])
        rows = self.api("GET", "/api/query-logs?domain=printer", None)["items"]
        self.assertEqual([(r["decision"], r["reason"]) for r in rows],
                         [("local", "local:single-label")])

    def test_rewrites_answer_them(self):
        self.api("POST", "/api/dns/rewrites", {"domain": "printer", "answer": "192.168.1.9"},
                 201)
        self.api("POST", "/api/dns/rewrites",
                 {"domain": "dev.example.test", "answer": "app.localhost"}, 201)
        self.assertEqual(addresses(self.ask("printer")), ["192.168.1.9"])
        r = self.ask("dev.example.test")
        self.assertEqual(addresses(r), ["127.0.0.1"])  # the CNAME target stays here too
        self.assertEqual(self.up.queries, [])

    def test_settings_forward_them(self):
        body = self.api("PUT", "/api/dns/settings", {"forward_single_label": True,
                                                     "forward_private_reverse": True})
        self.assertEqual((body["forward_single_label"], body["forward_private_reverse"]),
                         (True, True))
        self.assertEqual(addresses(self.ask("printer")), ["198.18.0.66"])
        r = self.ask(PRIVATE_REVERSE[3], "PTR")
        self.assertEqual(r.answer[0][0].to_text(), "leaked.example.test.")
        # localhost and invalid have no switch: RFC 6761
        self.assertEqual(addresses(self.ask("localhost")), ["127.0.0.1"])
        self.assertEqual(self.ask("x.invalid").rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(sorted(q[1] for q in self.up.queries),
                         [PRIVATE_REVERSE[3], "printer"])
        # switched back: the cached answer from upstream is not served
        self.api("PUT", "/api/dns/settings", {"forward_single_label": False})
        self.assertEqual(self.ask("printer").rcode(), dns.rcode.NXDOMAIN)

    def test_lan_upstream_gets_them_public_upstream_never(self):
        router = Upstream.start(self, {
            "printer": {"A": ["192.168.1.7"]},
            PRIVATE_REVERSE[3]: {"PTR": ["printer.lan"]},
            "nas.home.arpa": {"A": ["192.168.1.8"]},
        })
        body = self.api("PUT", "/api/dns/settings", {"lan_upstreams": [router.spec]})
        self.assertEqual(body["lan_upstreams"], [router.spec])
        self.assertEqual(addresses(self.ask("printer")), ["192.168.1.7"])
        r = self.ask(PRIVATE_REVERSE[3], "PTR")
        self.assertEqual(r.answer[0][0].to_text(), "printer.lan.")
        self.assertEqual(self.ask(PRIVATE_REVERSE[0], "PTR").rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(addresses(self.ask("localhost")), ["127.0.0.1"])  # never asked
        self.assertEqual(addresses(self.ask("nas.home.arpa")), ["192.168.1.8"])
        self.assertEqual(self.ask("dc1.corp.local").rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(addresses(self.ask("www.example.test")), ["198.18.0.10"])
        self.assertEqual(sorted(q[1] for q in router.queries),
                         sorted(["printer", PRIVATE_REVERSE[3], PRIVATE_REVERSE[0],
                                 "nas.home.arpa", "dc1.corp.local"]))
        self.assertEqual([q[1] for q in self.up.queries], ["www.example.test"])
        status = self.d.get("/api/dns/status", headers=self.auth).json()
        self.assertEqual([(u["spec"], u["used"]) for u in status["lan_upstreams"]],
                         [(router.spec, True)])
        # the router goes away: SERVFAIL, still not the public upstream
        router.mode = "dead"
        self.assertEqual(self.ask("scanner").rcode(), dns.rcode.SERVFAIL)
        self.assertEqual([q[1] for q in self.up.queries], ["www.example.test"])
        # this server itself is refused as a LAN upstream (a loop)
        r = self.d.request("PUT", "/api/dns/settings",
                           {"lan_upstreams": [f"127.0.0.1:{self.d.dns_port}"]},
                           headers=self.auth)
        self.assertEqual((r.status, r.json()["details"][0]["field"]),
                         (400, "lan_upstreams.0"))
