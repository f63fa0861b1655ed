"""
The daemon's whole HTTP API, wired by L{sentinel.tap.wire} exactly as
``twistd sentinel`` wires it (every subsystem's areas), served in memory.
Tests that must cover every endpoint -- including ones added later by other
subsystems -- use this, so new routes are covered automatically.
"""

import shutil
import tempfile

from twisted.internet import reactor

from sentinel import tap
from sentinel.options import build_config
from tests.api.harness import ADMIN, PASSWORD, Client, session_cookie


async def wired_api(testcase, database=None):
    """(wiring, client, token, cookie): the full API with an admin logged in
    (on SQLite in the data directory, or on ``database``, a store URL)."""
    data_dir = tempfile.mkdtemp(prefix="sentinel-wired-")
    testcase.addCleanup(shutil.rmtree, data_dir, True)
    options = {"data-dir": data_dir, "dns-port": "15353", "http-port": "18080",
               "upstream": ["127.0.0.1:9"]}
    if database is not None:
        options["database"] = database
    config = build_config(options, {})
    w = tap.wire(config, reactor)
    await w.store.start()
    testcase.addCleanup(w.store.stop)
    if getattr(w, "cluster_state", None) is not None:
        from sentinel.cluster.signing import new_secret

        await w.cluster_state.load()  # what the cluster service does at start
        # A configured leader serves every endpoint (sync ones included).
        await w.cluster_state.enable_leader("http://127.0.0.1:18080", new_secret)

    def stop_role_services():
        # Loading the cluster state starts the leader-only services.
        for group in (w.leader_only, w.follower_only):
            if group.running:
                group.stopService()

    testcase.addCleanup(stop_role_services)
    client = Client(w.site.resource())
    r = await client.post("/api/auth/setup", json={"username": ADMIN, "password": PASSWORD})
    assert r.status == 201, r
    cookie = session_cookie(r)
    r = await client.post("/api/auth/tokens", json={"name": "tests"}, cookie=cookie)
    assert r.status == 201, r
    return w, client, r.json()["token"], cookie


def fill_path(spec, values=None):
    """The spec's path with its parameters filled (default "1")."""
    path = spec.path
    for name in spec.path_params:
        path = path.replace("{%s}" % name, str((values or {}).get(name, "1")))
    return path
