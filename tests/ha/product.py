"""
Real Sentinel nodes on the namespace LAN (L{tests.ha.netns}): `twistd
sentinel` with its own upstream DNS server, configured through the real
API only (first-run admin setup, an API token, PUT /api/dns/settings,
PUT /api/cluster/ha/config), then the keepalived sidecar.  Shared by the
failover tests; measured gaps go through L{record} to bench/failover.py.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.ha.lan import PROBE_NAME, Node
from tests.ha.netns import ADDRESSES, VIP, in_namespace
from tests.support.daemon import TWISTD

HTTP_PORT = 8080
VIP_URL = f"http://{VIP}:{HTTP_PORT}"
ZONE = {PROBE_NAME: {"A": ["198.18.0.10"], "ttl": 1}}
PRIORITY = {"a": 120, "b": 110}
PASSWORDS = {"a": "leader-password-1", "b": "follower-password-1"}


def http(method, url, body=None, headers=None, timeout=30):
    """(status, JSON body, headers); call it inside a namespace (in_namespace)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, _json(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, _json(e.read()), e.headers


def _json(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw


def record(name, seconds):
    """Print a measured gap; bench/failover.py collects them (SENTINEL_FAILOVER_RESULTS)."""
    sys.stderr.write(f"\n[failover] {name}: {seconds:.2f} s\n")
    path = os.environ.get("SENTINEL_FAILOVER_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"scenario": name, "seconds": round(seconds, 3)}) + "\n")


def ask(lan, server, name, host="c", patience=15):
    """
    (rcode text, [A answers]) from host's namespace (dnspython stub); a
    query that gets no answer is asked again for up to ``patience`` s (a
    busy machine may drop one), then ("Timeout", []).
    """
    def query():
        deadline = time.monotonic() + patience
        while True:
            try:
                reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=1)
            except (dns.exception.Timeout, OSError):
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                return "Timeout", []
            return dns.rcode.to_text(reply.rcode()), sorted(
                r.to_text() for rrset in reply.answer for r in rrset)
    return in_namespace(lan.ns(host), query, timeout=patience + 15)


class SentinelNode(Node):
    def __init__(self, lan, host):
        super().__init__(lan, host)
        self.daemon = None
        self.upstream_port = None
        self.auth = None  # admin API token headers
        self.extra_args = ()

    @property
    def url(self):
        return f"http://{self.address}:{HTTP_PORT}"

    def http(self, method, path, body=None, headers=None, base=None):
        """(status, JSON body) of a request made from inside this node's namespace."""
        status, body, _ = in_namespace(self.lan.ns(self.host), http, method,
                                       (base or self.url) + path, body, headers, timeout=45)
        return status, body

    def api(self, method, path, body=None, expect=200, auth=None, base=None):
        """A request with the admin token; asserts the status; returns the body."""
        status, answer = self.http(method, path, body, auth or self.auth, base)
        if status != expect:
            raise AssertionError(f"{method} {base or self.url}{path} on {self.host}: "
                                 f"HTTP {status} {answer} (expected {expect})")
        return answer

    def exec(self, argv):
        return self.lan.exec(self.host, argv)

    # -- processes --------------------------------------------------------------

    def start_upstream(self):
        path = self.log_path("upstream-out")
        p = self.lan.spawn(self.host, [sys.executable, "-m", "tests.ha.nsupstream",
                                       json.dumps(ZONE)], path)
        line = self.lan.wait_for(lambda: open(path).read().strip().split("\n")[0], 30,
                                 "the upstream's port")
        self.upstream_port = int(line)
        return p

    def start_daemon(self):
        self.daemon = self.lan.spawn(self.host, TWISTD + [
            "--nodaemon", "--pidfile=", "sentinel", "--data-dir", self.data_dir,
            "--dns-port", "53", "--dns-interface", f"{self.address},{VIP}",
            # HTTP on every address, as in the compose files: the leader URL
            # is the VIP's.
            "--http-port", str(HTTP_PORT),
            "--upstream", f"127.0.0.1:{self.upstream_port}", *self.extra_args],
            self.log_path("daemon"))

    def wait_api(self, timeout=60, healthy=False):
        """
        Until the API answers with its store open and the cluster state
        loaded (before that, changes get 503 STARTING), and, if healthy,
        /api/health 200.
        """
        last = []

        def up():
            if self.daemon.poll() is not None:
                raise AssertionError(f"daemon on {self.host} exited:\n{self.logs()}")
            try:
                last[:] = [self.http("GET", "/api/health")]
            except OSError as e:
                last[:] = [e]
                return False
            status, body = last[0]
            return status == 200 if healthy else (
                isinstance(body, dict) and body.get("store") == "ok"
                and (body.get("checks") or {}).get("cluster", True))
        what = "healthy" if healthy else "answering"
        try:
            self.lan.wait_for(up, timeout, f"daemon on {self.host} {what}", interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; last answer {last}\n{self.logs()}") from None

    # -- configuration through the API ------------------------------------------

    def setup_admin(self):
        """First-run setup (the admin account), then an API token for the tests."""
        status, body, headers = in_namespace(
            self.lan.ns(self.host), http, "POST", self.url + "/api/auth/setup",
            {"username": "admin", "password": PASSWORDS[self.host]}, timeout=45)
        assert status == 201, (self.host, status, body)
        cookie = (headers.get("Set-Cookie") or "").split(";")[0]
        self.auth = self.new_token({"Cookie": cookie, "Origin": self.url})
        return self.auth

    def new_token(self, auth, via=None):
        body = self.api("POST", "/api/auth/tokens", {"name": f"t{time.time_ns()}"},
                        expect=201, auth=auth, base=via)
        return {"Authorization": "Bearer " + body["token"]}

    def configure(self, **ha):
        """This node's VIP settings, via the API.  DNS access needs no setting:
        the test LAN (198.18.0.0/15, not a private range) is the nodes' own
        link, answered by default (local_networks)."""
        body = {"enabled": True, "vip": f"{VIP}/24", "interface": "eth0",
                "priority": PRIORITY[self.host], "password": "a|b&c"}
        body.update(ha)
        answer = self.api("PUT", "/api/cluster/ha/config", body)
        assert answer["passwordSet"] and answer["enabled"], answer
        with open(self.paths.config_file) as f:  # what the sidecar will read
            assert json.load(f)["priority"] == body["priority"]


def bring_up(testcase, nodes, **ha_by_host):
    """
    Start every node's upstream and daemon, configure each through the API,
    then the sidecars one after the other: a becomes MASTER before b starts,
    so the initial election never depends on which node starts first.
    """
    for node in nodes:
        node.start_upstream()
        node.start_daemon()
    for node in nodes:
        node.wait_api()
        node.setup_admin()
        node.configure(**ha_by_host.get(node.host, {}))
    for node in nodes:
        node.wait_api(healthy=True)  # DNS answers its self-probe
    first, *others = nodes
    first.start_sidecar()
    testcase.wait_master(first.host, timeout=30)
    for node in others:
        node.start_sidecar()
        testcase.wait_vrrp(node.host, "BACKUP")
        testcase.wait_role(node.host, "follower")


def unicast(nodes):
    """Per-host HA settings for unicast mode (each lists the others)."""
    return {n.host: {"mode": "unicast", "sourceIp": n.address,
                     "unicastPeers": [ADDRESSES[o.host] for o in nodes if o is not n]}
            for n in nodes}
