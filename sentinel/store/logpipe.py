"""
The DNS process's side of the query-log writer (L{sentinel.store.logwriter}):
starts the child when there is something to write, sends it frames, and
fires one Deferred per frame when the child has answered for it.

``append(rows)`` -> Deferred of (stored, skipped as malformed); it fails
with L{WriterError} when the child reports an error or dies before
answering (nothing of that frame was stored, so the caller keeps the rows
and tries again).  A child that died is started again at the next append.
"""

import os
import sys
from collections import deque

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from sentinel.store.logwriter import FRAME, encode

log = Logger()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


F_SETPIPE_SZ = 1031  # Linux
PIPE_SIZE = 1 << 20


def _bigger_pipe(transport):
    """
    1 MiB instead of 64 KiB for the child's stdin (Linux): frames go in with
    a few large writes and reads instead of many small ones, each waking
    the other process.  Best effort.
    """
    try:
        import fcntl

        fcntl.fcntl(transport.pipes[0].fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except Exception:
        pass


class WriterError(Exception):
    """The writer did not store a frame (database error, or the child died)."""


class _Child(ProcessProtocol):
    def __init__(self, owner):
        self.owner = owner
        self.pending = deque()  # (Deferred, rows left out when encoding)
        self.partial = b""
        self.ended = Deferred()
        self.err = deque(maxlen=20)

    def outReceived(self, data):
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if not self.pending:
                log.warn("query-log writer said more than it was asked: {line!r}", line=line)
                continue
            d, skipped = self.pending.popleft()
            words = line.decode("utf-8", "replace").split(" ", 1)
            if words[0] == "ok":
                try:
                    stored, bad = (int(x) for x in words[1].split())
                except (IndexError, ValueError):
                    d.errback(WriterError(f"unreadable answer {line!r}"))
                    continue
                d.callback((stored, bad + skipped))
            else:
                d.errback(WriterError(words[1] if len(words) > 1 else "unknown error"))

    def errReceived(self, data):
        self.err.extend(data.decode("utf-8", "replace").splitlines())

    def processEnded(self, reason):
        self.owner._ended(self)
        why = self.err[-1] if self.err else reason.getErrorMessage()
        pending, self.pending = self.pending, deque()
        for d, _ in pending:
            d.errback(WriterError(f"the query-log writer stopped ({why})"))
        self.ended.callback(None)


class QueryLogWriter:
    """
    reactor: spawns the child; url: the database (``sqlite:///path`` or a
    PostgreSQL URL).  ``argv`` replaces the command (tests).
    """

    def __init__(self, reactor, url, argv=None, timeout=60.0):
        self.reactor = reactor
        self.url = url
        self.argv = argv or [sys.executable, "-m", "sentinel.store.logwriter"]
        self.timeout = timeout  # a frame not answered by then: the child is killed
        self._child = None
        self._stopped = False

    def _start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        child = _Child(self)
        self.reactor.spawnProcess(child, self.argv[0], self.argv, env=env)
        _bigger_pipe(child.transport)
        url = self.url.encode("utf-8")
        child.transport.write(FRAME.pack(len(url)) + url)
        self._child = child
        return child

    def _ended(self, child):
        if self._child is child:
            self._child = None

    def append(self, rows):
        if self._stopped:
            return fail(WriterError("the query-log writer is stopped"))
        frame, skipped = encode(rows)
        try:
            child = self._child or self._start()
        except Exception as e:
            return fail(WriterError(f"cannot start the query-log writer: {e}"))
        d = Deferred()
        child.pending.append((d, skipped))
        child.transport.write(frame)
        timer = self.reactor.callLater(self.timeout, self._kill, child)

        def answered(result):
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(answered)

    def _kill(self, child):
        log.warn("the query-log writer did not answer for {s:.0f}s; restarting it",
                 s=self.timeout)
        try:
            child.transport.signalProcess("KILL")
        except Exception:
            pass

    @property
    def pid(self):
        child = self._child
        return child.transport.pid if child is not None else None

    def stop(self):
        """Let the child finish what it was sent, then end it."""
        self._stopped = True
        child = self._child
        if child is None:
            return succeed(None)
        child.transport.closeStdin()
        timer = self.reactor.callLater(self.timeout, self._kill, child)

        def ended(result):
            if timer.active():
                timer.cancel()
            return result

        return child.ended.addBoth(ended)
