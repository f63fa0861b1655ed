"""
Nodes on the namespace LAN (L{tests.ha.netns}): the keepalived sidecar, a
prober on the client, and gap measurement.
"""

import os
import shutil
import sys
import tempfile
import time

from sentinel.ha import files
from sentinel.ha.layout import SidecarPaths
from tests.ha.netns import ADDRESSES, VIP

PROBE_NAME = "probe.example.test"
# keepalived's log lines for how a BACKUP became MASTER: on the holder's
# priority-0 advert (a hand-over, within the skew time) or after hearing
# nothing for the master-down interval.
HANDOVER = "Backup received priority 0 advertisement"
TIMEOUT_TAKEOVER = "Receive advertisement timeout"
# Longest DNS gap a failover test accepts: this long means failover is broken,
# not slow on a busy machine (the targets are checked by bench/failover.py).
SANITY = 8.0


class Node:
    """One node's files and its sidecar (the daemon is started by the test)."""

    def __init__(self, lan, host):
        self.lan, self.host = lan, host
        self.address = ADDRESSES[host]
        self.data_dir = tempfile.mkdtemp(prefix=f"sentinel-{lan.prefix}-{host}-")
        # Removed after the node's processes are stopped (cleanups run last-in,
        # first-out); a failing test puts the logs' tails into its message.
        lan.testcase.addCleanup(shutil.rmtree, self.data_dir, True)
        self.paths = SidecarPaths(
            data_dir=self.data_dir,
            role_file=os.path.join(self.data_dir, "sentinel", "cluster_role"),
            runtime_dir=os.path.join(self.data_dir, "run"))
        self.sidecar = None

    def log_path(self, what):
        return os.path.join(self.data_dir, f"{what}.log")

    def start_sidecar(self):
        self.sidecar = self.lan.spawn(
            self.host,
            [sys.executable, "-m", "sentinel.ha.cli", "run", "--data-dir", self.data_dir,
             "--runtime-dir", self.paths.runtime_dir, "--netinfo-interval", "5"],
            self.log_path("sidecar"))
        self.lan.watch_pid_file(os.path.join(self.paths.runtime_dir, "keepalived.pid"),
                                self.paths.conf)
        return self.sidecar

    def role(self):
        return files.read_role(self.paths.role_file)

    def status(self):
        try:
            return files.read_json(self.paths.status_file) or {}
        except files.FileFormatError:
            return {}

    def sidecar_log(self):
        """Everything the sidecar (and keepalived through it) logged so far."""
        try:
            with open(self.log_path("sidecar"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def logs(self):
        out = []
        for name in sorted(os.listdir(self.data_dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.data_dir, name), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                out.append(f"--- {self.host}/{name} (last 60 lines)\n"
                           + "\n".join(text.splitlines()[-60:]))
        return "\n".join(out)


class Prober:
    """The client asking the VIP every 50 ms."""

    def __init__(self, lan, out_dir, name=PROBE_NAME):
        self.out = os.path.join(out_dir, f"probe-{time.monotonic_ns()}.txt")
        self.process = lan.spawn("c", [sys.executable, "-m", "tests.ha.prober",
                                       "--server", VIP, "--name", name, "--out", self.out],
                                 self.out + ".log")

    def results(self):
        rows = []
        try:
            with open(self.out) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3:
                        rows.append((float(parts[0]), parts[1] == "ok", parts[2]))
        except OSError:
            pass
        return sorted(rows)  # workers finish out of order

    def wait_answering(self, lan, timeout=30, since=None):
        since = since or time.time()
        return lan.wait_for(
            lambda: [r for r in self.results() if r[0] >= since and r[1]],
            timeout, "DNS answers through the VIP")

    def gap(self, start, end):
        """Longest time without an answer between start and end (unix times)."""
        oks = [t for t, ok, _ in self.results() if ok and start <= t <= end]
        if not oks:
            return end - start
        edges = [start] + oks + [end]
        return max(b - a for a, b in zip(edges, edges[1:]))

    def answers(self, start, end):
        return [a for t, ok, a in self.results() if ok and start <= t <= end]
