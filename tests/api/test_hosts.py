"""
DNS rebinding and cross-site requests against a real daemon with a real
HTTP client: the Host header policy (sentinel.api.hosts) and the
cross-site check for cookie-authenticated form posts.
"""

import http.client
import json

from twisted.trial.unittest import SynchronousTestCase

from sentinel.api.hosts import HostPolicy, split_host
from tests.support.daemon import Daemon

ADMIN = {"username": "admin", "password": "correct horse battery"}


class PolicyTests(SynchronousTestCase):
    def test_names_that_cannot_be_an_attackers(self):
        policy = HostPolicy(own_names=["nas"])
        for host in ("192.168.1.53:8080", "192.168.1.53", "[::1]:8080", "[fd00::53]",
                     "localhost:8080", "app.localhost", "sentinel", "sentinel:8080",
                     "sentinel.lan", "dns.home.arpa:8080", "Sentinel.LAN.", "pi.local",
                     "router.internal", "nas", "x.test", None):
            self.assertTrue(policy.allowed(host), host)

    def test_public_names_and_garbage_are_refused(self):
        policy = HostPolicy()
        for host in ("evil.example", "evil.example:8080", "192.168.1.53.nip.io",
                     "lan.evil.example", "", "a b", "[::1", "::1", "1.2.3.4:x",
                     "evil.example:8080:80", "[192.168.1.1]", "x..lan", "evil.com\\@lan"):
            self.assertFalse(policy.allowed(host), host)

    def test_configured_names_suffixes_and_star(self):
        policy = HostPolicy(["dns.example.com", ".example.net"])
        self.assertTrue(policy.allowed("DNS.example.com:8080"))
        self.assertTrue(policy.allowed("a.b.example.net"))
        self.assertFalse(policy.allowed("example.com"))
        self.assertFalse(policy.allowed("xexample.net"))
        self.assertTrue(HostPolicy(["*"]).allowed("anything.example"))

    def test_split_host(self):
        self.assertEqual(split_host("[::1]:80"), "[::1]")
        self.assertEqual(split_host("a.lan.:80"), "a.lan")
        self.assertIsNone(split_host("a:80:80"))


def request(daemon, method, path, body=None, headers=None):
    """Raw http.client request, so Host/Origin are exactly what we say."""
    conn = http.client.HTTPConnection(daemon.host, daemon.http_port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = dict(headers or {})
        headers.setdefault("Host", f"{daemon.host}:{daemon.http_port}")
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if data is not None:
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(data))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


class RebindingTests(SynchronousTestCase):
    def setUp(self):
        self.daemon = Daemon(self, args=["--http-hosts", "dns.example.com,.example.net"])
        self.daemon.start()
        self.port = self.daemon.http_port

    def rebound(self, name):
        return {"Host": f"{name}:{self.port}", "Origin": f"http://{name}:{self.port}"}

    def test_a_rebound_name_cannot_set_up_log_in_or_load_the_ui(self):
        evil = self.rebound("evil.example")
        status, headers, body = request(self.daemon, "POST", "/api/auth/setup", ADMIN, evil)
        self.assertEqual(status, 421, body)
        self.assertEqual(json.loads(body)["error"], "HOST_NOT_ALLOWED")
        self.assertNotIn("set-cookie", headers)
        # Nothing was created: the real admin can still set up the node.
        status, _, _ = request(self.daemon, "GET", "/api/auth/status", headers=evil)
        self.assertEqual(status, 421)
        status, _, body = request(self.daemon, "GET", "/api/auth/status")
        self.assertFalse(json.loads(body)["configured"])
        self.assertEqual(request(self.daemon, "POST", "/api/auth/setup", ADMIN)[0], 201)
        status, headers, body = request(self.daemon, "POST", "/api/auth/login", ADMIN, evil)
        self.assertEqual(status, 421)
        self.assertNotIn("set-cookie", headers)
        status, headers, body = request(self.daemon, "GET", "/", headers=evil)
        self.assertEqual(status, 421)
        self.assertIn(b"--http-hosts", body)
        self.assertNotIn(b"<script", body)
        self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")

    def test_addresses_local_and_configured_names_work(self):
        for name in ("127.0.0.1", "localhost", "sentinel", "sentinel.lan", "dns.home.arpa",
                     "dns.example.com", "a.example.net"):
            status, _, body = request(self.daemon, "GET", "/api/auth/status",
                                      headers=self.rebound(name))
            self.assertEqual(status, 200, (name, body))
            status, _, body = request(self.daemon, "GET", "/", headers=self.rebound(name))
            self.assertEqual(status, 200, name)

    def test_signed_sync_endpoints_answer_any_name(self):
        status, _, body = request(self.daemon, "POST", "/api/cluster/sync/hello",
                                  {"nodeId": "abcdef0123"}, self.rebound("vip.example.org"))
        self.assertEqual(status, 401, body)
        self.assertEqual(json.loads(body)["error"], "UNSIGNED")


class CrossSiteFormTests(SynchronousTestCase):
    def test_cross_site_form_posts_with_the_cookie_are_refused(self):
        daemon = Daemon(self).start()
        status, headers, _ = request(daemon, "POST", "/api/auth/setup", ADMIN)
        self.assertEqual(status, 201)
        cookie = headers["set-cookie"].split(";")[0]
        for ctype, body in (("application/x-www-form-urlencoded", b'{"name":"x"}='),
                            ("text/plain", b'{"name":"x"}'),
                            ("multipart/form-data; boundary=b", b"--b--")):
            for extra in ({"Origin": "http://evil.example"},
                          {"Origin": "null"},
                          {"Sec-Fetch-Site": "cross-site"}):
                h = dict(extra, Cookie=cookie, **{"Content-Type": ctype})
                status, _, out = request(daemon, "POST", "/api/auth/tokens", body, h)
                self.assertEqual(status, 403, (ctype, extra, out))
                self.assertEqual(json.loads(out)["error"], "CROSS_SITE_REQUEST")
                status, _, out = request(daemon, "POST", "/api/auth/logout", body, h)
                self.assertEqual(status, 403, (ctype, extra, out))
        # The same-origin UI call works, and the session was never ended.
        status, _, out = request(daemon, "POST", "/api/auth/tokens", {"name": "x"}, {
            "Cookie": cookie, "Origin": f"http://{daemon.host}:{daemon.http_port}"})
        self.assertEqual(status, 201, out)
        status, _, out = request(daemon, "GET", "/api/auth/tokens", headers={"Cookie": cookie})
        self.assertEqual([t["name"] for t in json.loads(out)["tokens"]], ["x"])
