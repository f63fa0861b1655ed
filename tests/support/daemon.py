"""
Start a real ``twistd -n sentinel`` process on high loopback ports and talk
to it over HTTP with blocking clients (for end-to-end tests, which are
SynchronousTestCases).  The process is stopped (and killed if it must be)
in the test's cleanup, also when the test fails.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from tests.support.ports import free_port

TWISTD = [sys.executable, "-c", "import sys; sys.argv[0] = 'twistd'; "
          "from twisted.scripts.twistd import run; run()"]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sentinel_env(extra=None):
    """Environment for child processes: this checkout's code first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL_", "CLUSTER_"))}
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class HttpResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def http(method, url, body=None, headers=None, timeout=10):
    """Blocking HTTP; returns HttpResult for every status (no raising)."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResult(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        return HttpResult(e.code, e.headers, e.read())


class Daemon:
    """
    A Sentinel daemon for a test.  ``args`` are extra command-line options;
    ``env`` extra environment variables.
    """

    def __init__(self, testcase, *, data_dir=None, database=None, upstreams=("127.0.0.1:9",),
                 args=(), env=None, dns_port=None, http_port=None, host="127.0.0.1"):
        self.testcase = testcase
        self.host = host
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="sentinel-test-")
            # Registered first, so it runs last: after stop().
            testcase.addCleanup(shutil.rmtree, data_dir, True)
        self.data_dir = data_dir
        self.dns_port = dns_port or free_port()
        self.http_port = http_port or free_port()
        self.database = database
        self.upstreams = tuple(upstreams)
        self.args = list(args)
        self.env = dict(env or {})
        self.process = None
        self.log_path = os.path.join(self.data_dir, "daemon.log")
        testcase.addCleanup(self.stop)

    @property
    def base_url(self):
        return f"http://{self.host}:{self.http_port}"

    def command(self):
        cmd = TWISTD + [
            "--nodaemon", "--pidfile=", "sentinel",
            "--data-dir", self.data_dir,
            "--dns-port", str(self.dns_port),
            "--dns-interface", self.host,
            "--http-port", str(self.http_port),
            "--http-interface", self.host,
        ]
        for up in self.upstreams:
            cmd += ["--upstream", up]
        if self.database:
            cmd += ["--database", self.database]
        return cmd + self.args

    def start(self, wait=True, timeout=30):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT,
            cwd=self.data_dir, env=sentinel_env(self.env),
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.get("/api/health", timeout=1).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not healthy after {timeout}s:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=10):
        return http(method, self.base_url + path, body, headers, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        self.process = None


def run_sentinel(args, env=None, timeout=30):
    """Run ``twistd -n sentinel ARGS`` to completion (for start-up errors)."""
    cmd = TWISTD + ["--nodaemon", "--pidfile=", "sentinel"] + list(args)
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=sentinel_env(env),
                          cwd=tempfile.gettempdir())
