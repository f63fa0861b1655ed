"""
A network namespace with nothing but loopback, for tests that let a fuzzer
drive a real daemon: whatever URLs or upstreams the fuzzer makes the daemon
use, nothing can leave the namespace (no routes), so no traffic reaches
any address outside it.  The daemon and the fuzzer run inside it (``ip
netns exec``); the test's own HTTP calls enter it from a thread (setns).
The namespace and every process in it are removed in the test's cleanup.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid

from tests.support.daemon import Daemon

_CLONE_NEWNET = 0x40000000


def skip_reason():
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (scripts/test runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*argv, check=True):
    r = subprocess.run(["ip"] + list(argv), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(argv)}: {r.stderr.strip()}")
    return r


def loopback_namespace(testcase):
    """Create a namespace with only lo (up); returns its name."""
    name = f"sntapi{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", name)
    testcase.addCleanup(_remove, name)
    _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    return name


def _remove(name):
    # Anything still running in it was started by this test: stop it by PID.
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    _ip("netns", "del", name, check=False)


def in_namespace(ns, fn, *args, timeout=60, **kw):
    """fn(*args, **kw) in a thread that entered ``ns`` (setns is per thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    result = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the caller
            result["error"] = e

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{fn} in {ns} did not finish in {timeout}s")
    if "error" in result:
        raise result["error"]
    return result["value"]


class IsolatedDaemon(Daemon):
    """A L{Daemon} inside namespace ``ns``; requests enter the namespace."""

    def __init__(self, testcase, ns, **kw):
        self.ns = ns
        super().__init__(testcase, **kw)

    def command(self):
        return ["ip", "netns", "exec", self.ns] + super().command()

    def request(self, *args, **kw):
        return in_namespace(self.ns, super().request, *args, **kw)

    def run_inside(self, argv, **kw):
        """subprocess.run(argv) inside the namespace."""
        return subprocess.run(["ip", "netns", "exec", self.ns] + list(argv), **kw)
