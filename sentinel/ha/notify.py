"""
VRRP state changes -> the role file.

keepalived writes one line per state change, in order, to its
``vrrp_notify_fifo`` (``INSTANCE "sentinel" MASTER 120``); the sidecar
reads the FIFO and writes the role file atomically: ``leader`` for MASTER,
``follower`` for BACKUP, FAULT and STOP.  A FIFO rather than notify
scripts because scripts run as separate processes that can finish out of
order when states change quickly (FAULT -> BACKUP -> MASTER within
milliseconds), and the last writer would win.
"""

import os
import re

from twisted.internet.abstract import FileDescriptor
from twisted.logger import Logger

log = Logger()

LINE = re.compile(r'^INSTANCE\s+"?(?P<name>[A-Za-z0-9_.-]+)"?\s+(?P<state>[A-Z]+)(?:\s+\d+)?\s*$')
ROLE_FOR_STATE = {
    "MASTER": "leader",
    "BACKUP": "follower",
    "FAULT": "follower",
    "STOP": "follower",
    "DELETED": "follower",
}


def parse_line(line, instance="sentinel"):
    """-> (state, role) for our instance's lines, else None."""
    m = LINE.fullmatch(line.strip())
    if not m or m.group("name") != instance:
        return None
    state = m.group("state")
    role = ROLE_FOR_STATE.get(state)
    return (state, role) if role else None


class FifoReader(FileDescriptor):
    """
    Reads lines from a FIFO it creates (mode 0600).  It also holds the
    FIFO open for writing itself, so it never sees end-of-file when
    keepalived restarts and reopens it.
    """

    def __init__(self, path, on_line, reactor=None):
        super().__init__(reactor)
        self.path = path
        self._on_line = on_line
        self._buffer = b""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.mkfifo(path, 0o600)
        self._rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)

    def fileno(self):
        return self._rfd if self._rfd is not None else -1

    def doRead(self):
        try:
            data = os.read(self._rfd, 65536)
        except BlockingIOError:
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        self._buffer = self._buffer[-4096:]
        for line in lines:
            try:
                self._on_line(line.decode("utf-8", "replace"))
            except Exception:
                log.failure("handling a VRRP notification failed")

    def intact(self):
        """The FIFO at ``path`` is still the one read here (not removed, nor
        replaced: keepalived opens the path at every start and reload, and
        creates a FIFO there if there is none)."""
        if self._rfd is None:
            return False
        try:
            there = os.stat(self.path)
        except OSError:
            return False
        own = os.fstat(self._rfd)
        return (there.st_dev, there.st_ino) == (own.st_dev, own.st_ino)

    def close(self, unlink=True):
        self.stopReading()
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                os.close(fd)
        self._rfd = self._wfd = None
        if unlink:
            try:
                os.unlink(self.path)
            except OSError:
                pass
