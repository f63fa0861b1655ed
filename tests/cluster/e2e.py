"""Helpers for the cluster end-to-end tests (real daemons on loopback)."""

import json
import os
import subprocess
import sys
import time

from sentinel.cluster import signing
from sentinel.cluster.signing import ClusterKeys
from tests.support import pg
from tests.support.daemon import REPO_ROOT, Daemon, sentinel_env

TEST_NODE = "feedfacecafebeef"  # the id the tests sign as


def nodetool(daemon, command, arg=None):
    cmd = [sys.executable, "-m", "tests.cluster.nodetool", daemon.data_dir,
           daemon.database or "", command]
    if arg is not None:
        cmd.append(json.dumps(arg))
    out = subprocess.run(cmd, capture_output=True, env=sentinel_env(), timeout=60, cwd=REPO_ROOT)
    if out.returncode:
        raise AssertionError(f"nodetool {command} failed:\n{out.stderr.decode()}")
    return json.loads(out.stdout)


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll; returns the seconds it took.  Fails with ``what`` on timeout."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        last = predicate()
        if last:
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def make_daemon(testcase, dialect, **kw):
    database = None
    if dialect == "postgres":
        database, drop = pg.create_database()
        testcase.addCleanup(drop)
    return Daemon(testcase, database=database, **kw)


def write_role(daemon, text):
    path = os.path.join(daemon.data_dir, "sentinel", "cluster_role")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # as keepalived's notify script does


def clear_role(daemon):
    try:
        os.unlink(os.path.join(daemon.data_dir, "sentinel", "cluster_role"))
    except FileNotFoundError:
        pass


def signed(daemon, secret, method, path, body=b"", now=None, node=TEST_NODE):
    headers = signing.sign_request(ClusterKeys.from_secret(secret), node, method, path, body,
                                   time.time() if now is None else now)
    if body:
        headers["Content-Type"] = "application/json"
    return headers


def changes_path(since=0, history="0" * 16, wait=0):
    return f"/api/cluster/sync/changes?since={since}&history={history}&wait={wait}"


def entities(dump):
    return {(k, key): data for k, key, data in dump["entities"]}
