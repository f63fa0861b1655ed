"""
A network namespace with nothing but loopback, for tests that let a fuzzer
drive a real daemon: whatever URLs or upstreams the fuzzer makes the daemon
use, nothing can leave the namespace (no routes), so no traffic reaches
any address outside it.  The daemon and the fuzzer run inside it (``ip
netns exec``); the test's own HTTP calls enter it from a thread (setns).
The namespace and every process in it are removed in the test's cleanup.
"""

import os
import signal
import subprocess
import uuid

from tests.support.daemon import Daemon
from tests.support.netns import in_namespace, skip_reason  # noqa: F401


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
