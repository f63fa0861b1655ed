"""
Blocking helpers for browser tests: an admin API client (to prepare a
daemon quickly where the UI itself is not under test) and ``dig``.
"""

import re
import subprocess
import time

from tests.support.daemon import http

USERNAME = "admin"
PASSWORD = "correct horse battery"


class Admin:
    """Logged-in API access to a daemon through its session cookie."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.cookie = None

    def _keep_cookie(self, result):
        for header in result.headers.get_all("Set-Cookie") or []:
            pair = header.split(";", 1)[0]
            if pair.startswith("sentinel_session="):
                self.cookie = pair
        return result

    def _post(self, path, body):
        """POST, waiting out 503 STARTING right after the daemon came up."""
        deadline = time.monotonic() + 15
        while True:
            r = self.daemon.post(path, body)
            if r.status != 503 or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def setup(self, username=USERNAME, password=PASSWORD):
        r = self._post("/api/auth/setup", {"username": username, "password": password})
        assert r.status == 201, (r.status, r.body)
        self._keep_cookie(r)
        return self

    def login(self, username=USERNAME, password=PASSWORD):
        r = self._post("/api/auth/login", {"username": username, "password": password})
        assert r.status == 200, (r.status, r.body)
        self._keep_cookie(r)
        return self

    def request(self, method, path, body=None, expect=None):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        r = http(method, self.daemon.base_url + path, body, headers)
        if expect is not None:
            assert r.status == expect, (method, path, r.status, r.body)
        return r

    def get(self, path, expect=200):
        return self.request("GET", path, expect=expect).json()

    def post(self, path, body=None, expect=None):
        r = self.request("POST", path, {} if body is None else body)
        assert (r.status == expect) if expect else r.status < 300, (path, r.status, r.body)
        return r.json() if r.body else None


def wait_started(daemon, timeout=15):
    """/api/health answers before the cluster state is loaded (mutations
    get 503 STARTING until then): wait for /api/cluster/ready to be 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.get("/api/cluster/ready").status == 200:
            return daemon
        time.sleep(0.05)
    raise AssertionError(f"{daemon.base_url} not ready after {timeout}s:\n{daemon.log()}")


def require_api(daemon, *paths):
    """Skip (not fail) while an API these tests drive has not landed yet."""
    from twisted.trial.unittest import SkipTest

    for path in ("/api/auth/status",) + paths:
        r = daemon.get(path)
        if r.status == 404 and b"No such API endpoint" in r.body:
            raise SkipTest(f"{path} is not on this branch yet")
    wait_started(daemon)


def dig(daemon, name, qtype="A", source=None):
    """(status, answer lines) of a real ``dig`` query to the daemon."""
    cmd = ["dig", "+tries=1", "+time=3", "-p", str(daemon.dns_port), f"@{daemon.host}",
           name, qtype]
    if source:
        cmd += ["-b", source]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout
    match = re.search(r"status: ([A-Z]+)", out)
    answers = []
    section = False
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = True
        elif section and not line.strip():
            section = False
        elif section:
            answers.append(line)
    return (match.group(1) if match else None), answers
