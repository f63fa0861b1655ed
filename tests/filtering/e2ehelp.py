"""
End-to-end helpers: a real daemon with an admin API token, a blocklist
HTTP server on loopback (a thread, stopped in cleanup), and dnspython
queries from chosen loopback source addresses.
"""

import hashlib
import http.server
import sqlite3
import threading
import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.dns.clients import ZONE
from tests.support.daemon import Daemon
from tests.support.upstream import Upstream

PASSWORD = "correct horse battery"
FILTER_ZONE = dict(ZONE, **{
    "ads.example.test": {"A": ["198.18.0.66"]},
    "sub.ads.example.test": {"A": ["198.18.0.67"]},
    "track.example.test": {"A": ["198.18.0.68"]},
    "good.example.test": {"A": ["198.18.0.69"]},
    "shadow.example.test": {"A": ["198.18.0.70"]},
})


class ListServer:
    """Serves {path: (status, body)} with ETags; change ``files`` any time."""

    def __init__(self, testcase):
        self.files = {}
        self.hits = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits.append(self.path)
                status, body = server.files.get(self.path, (404, b"missing"))
                etag = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
                if status == 200 and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 200:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        testcase.addCleanup(self.stop)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path, text, status=200):
        self.files[path] = (status, text.encode() if isinstance(text, str) else text)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FilteringDaemon:
    """A daemon, its upstream and an admin token."""

    def __init__(self, testcase, zone=FILTER_ZONE):
        self.t = testcase
        self.up = Upstream.start(testcase, zone)
        self.d = Daemon(testcase, upstreams=[self.up.spec]).start()
        def setup():
            r = self.d.post("/api/auth/setup", {"username": "admin", "password": PASSWORD})
            return None if b"STARTING" in r.body else r

        r = wait_until(setup)  # the read-only guard refuses changes while starting
        assert r.status == 201, r.body
        cookie = "sentinel_session=" + r.headers["Set-Cookie"].split("sentinel_session=")[1] \
            .split(";")[0]
        r = self.d.post("/api/auth/tokens", {"name": "e2e"}, headers={"Cookie": cookie})
        assert r.status == 201, r.body
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    def api(self, method, path, body=None, expect=None):
        r = self.d.request(method, path, body, headers=self.auth)
        if expect is not None:
            self.t.assertEqual(r.status, expect, r.body)
        return r.json() if r.body else None

    def query(self, name, rdtype="A", source="127.0.0.1", **kw):
        q = dns.message.make_query(name, rdtype, **kw)
        return dns.query.udp(q, "127.0.0.1", port=self.d.dns_port, timeout=3, source=source)

    def answer(self, name, rdtype="A", source="127.0.0.1"):
        """(rcode text, [answer texts]) for a query from ``source``."""
        r = self.query(name, rdtype, source)
        return dns.rcode.to_text(r.rcode()), [rr.to_text() for rrset in r.answer
                                              for rr in rrset]

    def logs(self, **params):
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return self.api("GET", "/api/query-logs?" + query, expect=200)["items"]

    def db(self):
        return sqlite3.connect(f"file:{self.d.data_dir}/sentinel.db", uri=True, timeout=10)


def wait_until(predicate, timeout=10.0, step=0.05, what="condition"):
    """Poll until ``predicate()`` is true; its value.  Fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


BLOCKED_RCODE = dns.rcode.NXDOMAIN
A = dns.rdatatype.A
