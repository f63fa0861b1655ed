"""
A small LAN of network namespaces for failover tests:

    <p>-lan   a bridge (br0) with one veth port per host
    <p>-a     node A, eth0 198.18.0.2/24
    <p>-b     node B, eth0 198.18.0.3/24
    <p>-c     the client, eth0 198.18.0.100/24
    VIP       198.18.0.53

<p> is unique per run ("snt" + 6 hex digits), so parallel runs never meet.
Only 198.18.0.0/15 addresses are used, and only inside these namespaces:
nothing touches the host's own network namespace.  Every namespace is
deleted and every process started here is stopped (by PID, SIGTERM then
SIGKILL) in the test's cleanup, also when the test fails; keepalived
children of a killed sidecar are found through their pid files.
"""

import json
import os
import signal
import subprocess
import time
import uuid

from tests.support.daemon import REPO_ROOT, sentinel_env
from tests.support.netns import in_namespace, skip_reason  # noqa: F401

ADDRESSES = {"a": "198.18.0.2", "b": "198.18.0.3", "c": "198.18.0.100"}
VIP = "198.18.0.53"
PREFIX = 24


def _run(argv, check=True, timeout=30):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Lan:
    def __init__(self, testcase, hosts=("a", "b", "c")):
        self.testcase = testcase
        self.prefix = f"snt{uuid.uuid4().hex[:6]}"
        self.hosts = tuple(hosts)
        self.processes = []  # Popen, stopped in cleanup
        self.pid_files = []  # (path, marker): keepalived left by a killed sidecar
        self.lan = self.ns("lan")
        self._add_ns(self.lan)
        _run(["ip", "-n", self.lan, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.lan, "link", "set", "br0", "up"])
        for host in self.hosts:
            ns = self.ns(host)
            self._add_ns(ns)
            _run(["ip", "-n", self.lan, "link", "add", f"v{host}", "type", "veth",
                  "peer", "name", "eth0", "netns", ns])
            _run(["ip", "-n", self.lan, "link", "set", f"v{host}", "master", "br0", "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{ADDRESSES[host]}/{PREFIX}", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def _add_ns(self, name):
        _run(["ip", "netns", "add", name])
        self.testcase.addCleanup(_run, ["ip", "netns", "del", name], False)

    # -- processes ---------------------------------------------------------------

    def spawn(self, host, argv, log_path, env=None):
        """Start argv inside host's namespace; stopped in cleanup."""
        log = open(log_path, "ab")
        self.testcase.addCleanup(log.close)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(host)] + list(argv),
                             stdout=log, stderr=subprocess.STDOUT,
                             env=sentinel_env(env), cwd=REPO_ROOT)
        self.processes.append(p)
        self.testcase.addCleanup(stop_process, p)
        return p

    def watch_pid_file(self, path, marker):
        """In cleanup, stop the process in path if its command line has marker."""
        self.testcase.addCleanup(stop_pid_file, path, marker)

    def exec(self, host, argv, check=True, timeout=30):
        return _run(["ip", "netns", "exec", self.ns(host)] + list(argv), check, timeout)

    def sysctl(self, host, name, value):
        self.exec(host, ["sysctl", "-q", "-w", f"{name}={value}"])

    # -- observation and faults ----------------------------------------------------

    def addresses(self, host):
        r = _run(["ip", "-n", self.ns(host), "-j", "addr", "show", "dev", "eth0"], check=False)
        try:
            info = json.loads(r.stdout or "[]")
        except ValueError:
            return []
        return [a.get("local") for i in info for a in i.get("addr_info", ())]

    def vip_owners(self):
        return [h for h in self.hosts if h != "c" and VIP in self.addresses(h)]

    def wait_for(self, predicate, timeout, what, interval=0.05):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def link(self, host, up):
        """The host's cable: its port on the bridge (the host sees carrier loss)."""
        _run(["ip", "-n", self.lan, "link", "set", f"v{host}", "up" if up else "down"])


def stop_process(p, grace=5.0):
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
    except ProcessLookupError:
        pass


def stop_pid_file(path, marker):
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return
    if marker.encode() not in cmdline:
        return  # not ours (pid reused)
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
