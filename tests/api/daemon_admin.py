"""Blocking helpers to get an admin session/token on a real daemon."""

import shutil
import tempfile
import time
from http.cookies import SimpleCookie

ADMIN, PASSWORD = "admin", "correct horse battery"


def scratch_dir(testcase):
    """A data directory removed after the test (register before the daemon,
    so the daemon is stopped first)."""
    path = tempfile.mkdtemp(prefix="sentinel-api-e2e-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def _retrying(call, timeout=15):
    """call() -> HttpResult; retried while the node answers 503 (starting)."""
    deadline = time.monotonic() + timeout
    while True:
        r = call()
        if r.status != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def cookie_of(result):
    jar = SimpleCookie()
    for value in result.headers.get_all("Set-Cookie") or []:
        jar.load(value)
    morsel = jar.get("sentinel_session")
    return f"sentinel_session={morsel.value}" if morsel else None


def setup_admin(daemon, username=ADMIN, password=PASSWORD):
    """Create the admin; returns the session cookie."""
    r = _retrying(lambda: daemon.post("/api/auth/setup",
                                      {"username": username, "password": password}))
    assert r.status == 201, (r.status, r.body)
    return cookie_of(r)


def login(daemon, username=ADMIN, password=PASSWORD):
    r = _retrying(lambda: daemon.post("/api/auth/login",
                                      {"username": username, "password": password}))
    assert r.status == 200, (r.status, r.body)
    return cookie_of(r)


def create_token(daemon, cookie, name="tests"):
    r = _retrying(lambda: daemon.post("/api/auth/tokens", {"name": name},
                                      headers={"Cookie": cookie}))
    assert r.status == 201, (r.status, r.body)
    return r.json()["token"]
