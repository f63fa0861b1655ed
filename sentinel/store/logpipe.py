"""
The DNS process's side of the query-log writer (L{sentinel.store.logwriter}).

Rows reach the writer child through a *spool*: the frame is appended to a
file in the data directory (a page-cache write: microseconds, and it
never reaches the disk when it is stored within the kernel's writeback
delay, ~30 s) and the child is sent only its position.  The child stores
it in the database when it gets the CPU: it runs at the lowest priority,
so under a burst DNS keeps the core and the rows wait in the spool, not
in the DNS process's memory.  Nothing is lost while the spool is below
its limit (256 MiB, ~4 M rows, about a minute at this machine's highest
rate); whenever nothing in it is waiting, the spool is cut back towards
its header, 4 MiB at a time (L{Spool}).  Without a spool path (tests, tools), frames go through the pipe.

``append(rows)`` raises L{WriterError} when it cannot take the rows (the
spool is full or cannot be written, or the writer is stopped): the
caller keeps them.  Otherwise it returns a Deferred of (stored, skipped as
malformed) that fires once they are committed.  A frame the child could
not store (database error) is sent again after ``retry_delay``; a child
that died is started again and is sent again what it had not answered,
after ``retry_delay`` doubled for each child in a row that died without
answering (``RETRY_MAX`` at most).  Every frame is stored exactly once:
it is numbered, and the child records the numbers it stored in the
database with the rows (L{sentinel.store.spoolfile}), so a frame the dead
child had committed is not stored again.  A frame the child cannot read
(``lost``) is not sent again; its rows count as skipped.  The Deferred
fails only when the writer is stopped first; the spool then stays, and
the next start stores what it holds (``start``: a spool file found at
start, left by a daemon that was killed, is renamed ``.recover-N`` and
the child stores its frames not stored yet, then removes it).
``clear(before)``: L{sentinel.store.logwriter._Sink.clear}, in order with the frames.

``settled(timeout)``: fires when every frame sent so far has been
answered, or after ``timeout`` seconds (readers that want a current log
without waiting for a whole backlog).
"""

import bisect
import glob
import os
import sys
from collections import deque

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from sentinel.store import spoolfile
from sentinel.store.logwriter import (
    CLEAR, CLEAR_ARGS, RECOVER, RECOVER_ARGS, REF, encode, frame as framed,
)

log = Logger()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


F_SETPIPE_SZ = 1031  # Linux
PIPE_SIZE = 1 << 20
SPOOL_LIMIT = spoolfile.LIMIT
RESET_STEP = 4 * 1024 * 1024  # bytes a spool reset cuts at most (L{Spool})
RETRY_MAX = 60.0  # seconds between starts of a writer that keeps dying, at most
WARN_EVERY = 60.0  # seconds between warnings of frames the database failed to store, at least


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
    """The writer cannot take rows (spool full or unwritable, or stopped)."""


class Spool:
    """
    The append-only file of numbered frames (0600: it holds who asked for
    what; format: L{sentinel.store.spoolfile}).  Created with only its
    header, naming a new run; ``reset()``, once every record in it is
    stored, cuts it back towards that header.

    A cut frees the file's pages in the kernel, on the reactor thread:
    ~60 us per MiB here, so cutting a 100 MiB backlog at once held DNS
    for ~7 ms (seen with ``bench.stalls``).  A reset therefore cuts at
    most ``RESET_STEP`` bytes, at a record boundary, and the next ones
    cut the rest (there is one whenever the writer has caught up).  The
    records left before the cut were stored: if the daemon is killed,
    the next start skips them by their numbers (``spoolfile.FrameSet``).
    """

    def __init__(self, path, limit=SPOOL_LIMIT):
        self.path = path
        self.limit = limit
        header, self.run = spoolfile.new_header()
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        self.fd = os.open(path, flags, 0o600)
        try:
            os.fchmod(self.fd, 0o600)
            if os.pwrite(self.fd, header, 0) != len(header):
                raise OSError("short write")
        except OSError:
            os.close(self.fd)
            raise
        self.size = len(header)
        self._starts = []  # where each record still in the file starts, in order

    def add(self, number, body):
        """Appends frame ``number``; returns (offset, length) of its record."""
        offset = self.size
        if offset + len(body) > self.limit:
            raise WriterError(f"the query-log spool is full ({offset >> 20} MiB waiting "
                              "for the database)")
        head = spoolfile.record_head(number, body)
        size = len(head) + len(body)
        try:
            written = os.pwritev(self.fd, (head, body), offset)
        except OSError as e:
            raise WriterError(f"cannot write the query-log spool {self.path}: {e}") from None
        if written != size:
            raise WriterError(f"cannot write the query-log spool {self.path}: short write")
        self.size = offset + size
        self._starts.append(offset)
        return offset, size

    def reset(self):
        """Every record is stored: cut the file back (see the class doc)."""
        starts = self._starts
        if not starts:
            return
        # The first record that starts within the last RESET_STEP bytes (or
        # the last record, if it is longer than that): cut where it starts.
        i = min(bisect.bisect_left(starts, self.size - RESET_STEP), len(starts) - 1)
        cut = starts[i] if i else spoolfile.HEADER_SIZE
        os.ftruncate(self.fd, cut)
        del starts[i:]
        self.size = cut

    def close(self, keep=False):
        """keep: frames in it were not stored; the next start recovers them."""
        os.close(self.fd)
        if not keep:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _progress(pid):
    """(state letter, CPU ticks used) of a process, from /proc (Linux); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError, TypeError):
        return None


class _Frame:
    __slots__ = ("wire", "rows", "skipped", "done", "seq")

    def __init__(self, wire, rows, skipped):
        self.wire = wire  # what goes down the pipe (the frame, or its position in the spool)
        self.rows = rows
        self.skipped = skipped
        self.done = Deferred()
        self.seq = 0


class _Child(ProcessProtocol):
    def __init__(self, owner):
        self.owner = owner
        self.pending = deque()  # _Frame, in the order sent
        self.partial = b""
        self.ended = Deferred()
        self.err = deque(maxlen=20)
        self.cpu = None  # CPU ticks when the watchdog was last armed

    def outReceived(self, data):
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line.startswith(b"note "):
                log.warn("query log: {note}", note=line[5:].decode("utf-8", "replace"))
                continue
            if not self.pending:
                log.warn("query-log writer said more than it was asked: {line!r}", line=line)
                continue
            self.owner._answered(self.pending.popleft(), line)

    def errReceived(self, data):
        self.err.extend(data.decode("utf-8", "replace").splitlines())

    def processEnded(self, reason):
        why = self.err[-1] if self.err else reason.getErrorMessage()
        pending, self.pending = self.pending, deque()
        self.owner._ended(self, pending, why)
        self.ended.callback(None)


class QueryLogWriter:
    """
    reactor: spawns the child; clock: runs the timers (default: the
    reactor); url: the database
    (``sqlite:///path`` or a PostgreSQL URL); spool: the spool file's path
    (None: frames through the pipe).  ``argv`` replaces the command
    (tests).  A child that has frames to answer and answers none for
    ``timeout`` seconds is killed (and started again), unless it is
    busy or waiting for the CPU (L{_stuck}).
    """

    def __init__(self, reactor, url, spool=None, argv=None, timeout=60.0, retry_delay=1.0,
                 spool_limit=SPOOL_LIMIT, clock=None):
        self.reactor = reactor
        self.clock = clock or reactor
        self.url = url
        self.argv = argv or [sys.executable, "-m", "sentinel.store.logwriter"]
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.spool_path = spool
        self.spool_limit = spool_limit
        self.pending_rows = 0  # rows taken and not stored yet
        self.failures = 0  # frames the child could not store (each is retried)
        self.on_failure = None  # called with no argument for each of them
        self.problem = None  # why rows are not being stored now (one line), or None
        self._spool = None
        self._spool_error = None
        self._child = None
        self._stopped = False
        self._sent = 0  # frames sent, numbered from 1
        self._resolved = 0  # frames answered (or handed to the retry queue), in order
        self._waiters = []  # (seq, Deferred)
        self._retry = deque()
        self._retry_call = None
        self._watchdog = None
        self._answers = 0  # frames answered by any child
        self._answers_armed = 0  # ... when the watchdog was last armed
        self._answered_at = 0.0  # when the last of them was answered
        self._number = 0  # frames numbered (spool records), from 1
        self._deaths = 0  # children that died in a row without answering
        self._keep = False  # frames were given up: the spool stays for the next start
        self._recovery = None  # (the recovery frame, the files) until it is answered
        self._cleared = float("-inf")  # the time of the last clear
        self._warned_at = None  # when a failed frame was last warned about
        self._unwarned = 0  # frames failed since then

    # -- the caller's side ---------------------------------------------------

    def append(self, rows):
        if self._stopped:
            raise WriterError("the query-log writer is stopped")
        body, skipped = encode(rows)
        spool = self._open_spool()
        if spool is None:
            wire = framed(body)
        else:
            wire = framed(b"@" + REF.pack(*spool.add(self._number + 1, body)))
            self._number += 1
        frame = _Frame(wire, len(rows) - skipped, skipped)
        self.pending_rows += frame.rows
        self._send(frame)
        return frame.done

    def keep(self, rows):
        """
        The daemon stops and the store is not available: the rows only go
        to the spool, which stays for the next start (no child is started,
        the database is not touched).  Raises L{WriterError} like ``append``.
        """
        spool = self._open_spool(recover=False)
        if spool is None:
            raise WriterError("no spool to keep the rows in")
        body, _ = encode(rows)
        spool.add(self._number + 1, body)
        self._number += 1
        self._keep = True

    def start(self):
        """
        Creates the spool, and has the child recover the spools left by a
        daemon that did not stop cleanly (before any other frame; the
        child does it at idle priority, DNS does not wait).  Called once
        the store is ready; the first ``append`` does it otherwise.
        """
        try:
            self._open_spool()
        except WriterError:
            pass  # logged; the rows wait

    def clear(self, before):
        """
        ``DELETE /api/query-logs``: a Deferred that fires once the child
        has deleted the rows of queries up to ``before`` and marked every
        frame numbered so far as stored (in one transaction), so that no
        row recorded before the clear is stored after it, nor recovered
        from the spool at the next start.
        """
        if self._stopped:
            raise WriterError("the query-log writer is stopped")
        self._open_spool()
        self._cleared = before
        if self._recovery is not None:  # sent again after this: not the rows cleared
            self._recovery[0].wire = self._recovery_wire(self._recovery[1])
        frame = _Frame(framed(CLEAR + CLEAR_ARGS.pack(self._number, before)), 0, 0)
        self._send(frame)
        return frame.done

    def settled(self, timeout):
        target = self._sent
        if self._resolved >= target:
            return succeed(None)
        d = Deferred()
        self._waiters.append((target, d))
        call = self.clock.callLater(timeout, self._release, d)
        return d.addBoth(lambda r: call.cancel() if call.active() else None)

    @property
    def pid(self):
        child = self._child
        return child.transport.pid if child is not None else None

    def stop(self):
        """Let the child finish what it was sent, then end it."""
        self._stopped = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        retry, self._retry = self._retry, deque()
        self._give_up(retry, "the query-log writer is stopped")
        child = self._child
        if child is None:
            self._close_spool()
            return succeed(None)
        child.transport.closeStdin()
        timer = self.clock.callLater(self.timeout, self._kill, child)

        def ended(result):
            if timer.active():
                timer.cancel()
            self._close_spool()
            return result

        return child.ended.addBoth(ended)

    # -- internals -----------------------------------------------------------

    def _open_spool(self, recover=True):
        if self.spool_path is None:
            return None
        if self._spool is None:
            try:
                left = self._move_left_spool()
                self._spool = Spool(self.spool_path, self.spool_limit)
            except OSError as e:
                error = f"cannot create the query-log spool {self.spool_path}: {e}"
                if error != self._spool_error:
                    log.warn("{error}", error=error)
                self._spool_error = error
                raise WriterError(error) from None
            self._spool_error = None
            if recover:
                self._recover(left)
        return self._spool

    def _move_left_spool(self):
        """
        A spool file there now was left by a daemon that did not stop
        cleanly: renamed ``.recover-N`` (N above any such file already
        there: one an earlier start had not finished).  Returns every
        such file, oldest first.
        """
        def number(path):
            suffix = path.rsplit("-", 1)[1]
            return int(suffix) if suffix.isdigit() else 0

        left = sorted(glob.glob(glob.escape(self.spool_path) + ".recover-*"), key=number)
        if os.path.lexists(self.spool_path):
            path = f"{self.spool_path}.recover-{max(map(number, left), default=0) + 1}"
            os.rename(self.spool_path, path)
            left.append(path)
        return left

    def _recover(self, paths):
        """The child stores the frames of those files not stored yet, then forgets old runs."""
        frame = _Frame(self._recovery_wire(paths), 0, 0)  # notes logged: _Child.outReceived
        self._recovery = (frame, paths)

        def done(result):
            self._recovery = None
            return result

        frame.done.addBoth(done).addErrback(lambda f: f.trap(WriterError))
        self._send(frame)

    def _recovery_wire(self, paths):
        aside = self.spool_path + ".unreadable"
        return framed(RECOVER + RECOVER_ARGS.pack(self._cleared) + "\0".join(
            [aside] + paths).encode("utf-8", "surrogateescape"))

    def _close_spool(self):
        if self._spool is not None:
            self._spool.close(keep=self._keep)
            if self._keep:
                log.warn("query log: rows not stored yet stay in {path}; the next start "
                         "stores them", path=self.spool_path)
            self._spool = None

    def _start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        child = _Child(self)
        self.reactor.spawnProcess(child, self.argv[0], self.argv, env=env)
        _bigger_pipe(child.transport)
        url = self.url.encode("utf-8")
        spool = (self.spool_path or "").encode("utf-8")
        child.transport.write(framed(url) + framed(spool))
        self._child = child
        return child

    def _send(self, frame):
        try:
            child = self._child or self._start()
        except Exception as e:
            self._deaths += 1
            self.problem = f"cannot start the writer process ({e})"
            log.warn("cannot start the query-log writer ({e}); will retry in {s:.0f}s", e=e,
                     s=self._delay())
            self._sent += 1
            frame.seq = self._sent
            self._requeue(frame)
            self._resolve(frame.seq)
            return
        self._sent += 1
        frame.seq = self._sent
        idle = not child.pending
        child.pending.append(frame)
        child.transport.write(frame.wire)
        if idle:  # the time without an answer counts from now
            self._arm(child)

    def _answered(self, frame, line):
        self._deaths = 0
        if self._child is not None and self._child.pending:
            # It makes progress: the watchdog counts from now.  Noted only
            # (L{_stuck} re-arms it): frames are answered hundreds of times
            # a second under load, a re-arm costs a /proc read and a timer.
            self._answers += 1
            self._answered_at = self.clock.seconds()
        elif self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        words = line.decode("utf-8", "replace").split(" ", 1)
        stored = bad = None
        if words[0] == "ok":
            try:
                stored, bad = (int(x) for x in words[1].split())
            except (IndexError, ValueError):
                words = ["error", f"unreadable answer {line!r}"]
        if stored is not None:
            self.problem = None
            if self._warned_at is not None:
                log.info("query log: storing rows works again ({n} more frames had failed "
                         "since the last warning; all were kept)", n=self._unwarned)
                self._warned_at, self._unwarned = None, 0
            self.pending_rows -= frame.rows
            frame.done.callback((stored, bad + frame.skipped))
        elif words[0] == "lost":
            log.warn("query log: {n} rows lost ({e})", n=frame.rows,
                     e=words[1] if len(words) > 1 else "unreadable frame")
            self.pending_rows -= frame.rows
            frame.done.callback((0, frame.rows + frame.skipped))
        else:
            self.failures += 1
            self.problem = "storing rows fails ({e})".format(
                e=words[1] if len(words) > 1 else "unknown error")
            if self.on_failure is not None:
                self.on_failure()
            self._warn_failed(frame, words[1] if len(words) > 1 else "unknown error")
            self._requeue(frame)
        self._resolve(frame.seq)
        self._maybe_reset()

    def _warn_failed(self, frame, error):
        """
        One warning per WARN_EVERY seconds at most: a database locked for
        an hour fails thousands of frames, each retried every second.
        """
        now = self.clock.seconds()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            self._unwarned += 1
            return
        more = (f"; {self._unwarned} more frames failed since the last warning"
                if self._unwarned else "")
        log.warn("query log: storing {n} rows failed ({e}); will retry, rows kept in the "
                 "spool{more}", n=frame.rows, e=error, more=more)
        self._warned_at, self._unwarned = now, 0

    def _ended(self, child, pending, why):
        if self._child is child:
            self._child = None
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        if not pending:
            return
        if self._stopped:
            self._give_up(pending, f"the query-log writer stopped ({why})")
        else:
            self._deaths += 1
            self.problem = f"the writer process died ({why})"
            log.warn("the query-log writer stopped ({why}); sending its {n} unanswered "
                     "frames again in {s:.0f}s", why=why, n=len(pending), s=self._delay())
            for frame in pending:
                self._requeue(frame)
        self._resolve(pending[-1].seq)

    def _requeue(self, frame):
        if self._stopped:
            return self._give_up([frame], "the query-log writer is stopped")
        self._retry.append(frame)
        if self._retry_call is None or not self._retry_call.active():
            self._retry_call = self.clock.callLater(self._delay(), self._resend)

    def _delay(self):
        """retry_delay; doubled for each child in a row that died without answering (RETRY_MAX at most)."""
        if not self._deaths:
            return self.retry_delay
        return min(self.retry_delay * 2 ** min(self._deaths - 1, 20), max(RETRY_MAX, self.retry_delay))

    def _resend(self):
        retry, self._retry = self._retry, deque()
        if self._stopped:
            return self._give_up(retry, "the query-log writer is stopped")
        for frame in retry:
            self._send(frame)

    def _give_up(self, frames, why):
        if self._spool is not None and any(frame.rows for frame in frames):
            self._keep = True
            why += "; they stay in the spool, the next start stores them"
        for frame in frames:
            self.pending_rows -= frame.rows
            frame.done.errback(WriterError(why))
        self._maybe_reset()

    def _resolve(self, seq):
        if seq > self._resolved:
            self._resolved = seq
        if self._waiters:
            waiting = []
            for target, d in self._waiters:
                if target <= self._resolved:
                    d.callback(None)
                else:
                    waiting.append((target, d))
            self._waiters = waiting

    def _release(self, d):
        self._waiters = [(t, w) for t, w in self._waiters if w is not d]
        d.callback(None)

    def _maybe_reset(self):
        child = self._child
        if (self._spool is not None and not self._keep and not self._retry
                and not (child and child.pending)):
            try:
                self._spool.reset()
            except OSError as e:
                log.warn("cannot empty the query-log spool: {e}", e=e)

    def _arm(self, child):
        """The watchdog looks at the child ``timeout`` seconds from now."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watch(child, self.timeout)

    def _watch(self, child, delay):
        seen = _progress(child.transport.pid)
        child.cpu = seen[1] if seen is not None else None
        self._answers_armed = self._answers
        self._watchdog = self.clock.callLater(delay, self._stuck, child)

    def _stuck(self, child):
        """
        No answer for ``timeout`` seconds while frames wait: killed, unless
        it is working (it used CPU since the last look) or only waiting
        for the CPU (runnable: at idle priority, a saturated core starves
        it for as long as the saturation lasts; killing it would only
        throw its work away).
        """
        if not child.pending or child is not self._child:
            return
        if self._answers != self._answers_armed:  # answered since: count from that answer
            self._watch(child, max(0.0, self._answered_at + self.timeout - self.clock.seconds()))
            return
        seen = _progress(child.transport.pid)
        if seen is not None and (seen[0] == "R" or seen[1] != child.cpu):
            self._arm(child)
            return
        self._kill(child)

    def _kill(self, child):
        log.warn("the query-log writer did not answer for {s:.0f}s; restarting it",
                 s=self.timeout)
        try:
            child.transport.signalProcess("KILL")
        except Exception:
            pass
