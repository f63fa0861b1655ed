"""
The role file keepalived writes on every VRRP transition: exactly
``leader`` or ``follower`` (surrounding whitespace, CRLF and a UTF-8 BOM
ignored) overrides the configured role; a missing file means no override.

Anything else is a *problem* (empty, another word, binary, too large, a
directory or FIFO, unreadable): the watcher logs one line naming the file
and what is wrong, keeps the last good override (at start-up: none, i.e.
the configured role) and reports the problem (``RoleFileWatcher.problem``,
shown by /api/cluster/ready, /api/cluster/status and /api/health) until
the file is good again.  Bad content must never flip the node's role.

L{RoleFileWatcher} watches the file's DIRECTORY with INotify, so an
in-place write, a replace by rename and a delete are all seen, and
re-reads the file a moment after the last event (an in-place write is a
truncate followed by a write: reading at the truncate would flap the role).
A slow periodic re-read covers lost events (queue overflow).  If the
directory itself is removed or moved away, the file is re-read (and the
directory watched again once it is back) every REWATCH seconds until it is:
a recreated directory with a new role file is seen within half a second.  Reading never raises and never blocks (a FIFO is refused, not
opened for a writer to appear).
"""

import errno
import os
import stat
from typing import NamedTuple

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from sentinel.periodic import Guarded

log = Logger()

MAX_READ = 256
DEBOUNCE = 0.05  # seconds after the last event
RECHECK = 5.0  # seconds between safety re-reads
REWATCH = 0.5  # seconds between re-reads while the watched directory is gone
EXPECTED = "expected exactly 'leader' or 'follower'"


class RoleRead(NamedTuple):
    role: str = None  # 'leader', 'follower' or None (no override)
    problem: str = None  # what is wrong with the file, or None


def parse_role(content: bytes):
    """'leader', 'follower' or None."""
    return check_content(content).role


def check_content(content: bytes) -> RoleRead:
    if len(content) > MAX_READ:
        return RoleRead(problem=f"is larger than {MAX_READ} bytes; {EXPECTED}")
    try:
        word = content.decode("utf-8").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        return RoleRead(problem=f"is not text; {EXPECTED}")
    if word in ("leader", "follower"):
        return RoleRead(role=word)
    if not word:
        return RoleRead(problem=f"is empty; {EXPECTED}")
    shown = word if len(word) <= 40 else word[:40] + "..."
    return RoleRead(problem=f"says {shown!r}; {EXPECTED}")


def read_role_file(path) -> RoleRead:
    """What the role file says; a missing file is no override and no problem."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return RoleRead()
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            return RoleRead()  # a parent is a file: the role file does not exist either
        return RoleRead(problem=f"cannot be read ({e.strerror})")
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return RoleRead(problem="is a directory, not a file")
        if not stat.S_ISREG(mode):
            return RoleRead(problem="is not a regular file (a FIFO, socket or device?)")
        content = os.read(fd, MAX_READ + 1)
    except OSError as e:
        return RoleRead(problem=f"cannot be read ({e.strerror})")
    finally:
        os.close(fd)
    return check_content(content)


class RoleFileWatcher(Service):
    """
    Calls ``on_role(role_or_None)`` with the file's override at start and
    whenever it changes; a file with a problem changes nothing (see the
    module docstring) and is reported in ``problem``.  clock: IReactorTime;
    inotify_factory: callable() -> INotify-like (None: only the periodic
    re-read).
    """

    def __init__(self, path, on_role, clock, inotify_factory=None):
        self.path = path
        self._on_role = on_role
        self._clock = clock
        self._factory = inotify_factory
        self._notifier = None
        self._pending = None
        self._recheck = None
        self.current = None  # the last good override
        self.problem = None  # what is wrong with the file now (None: nothing)
        self.watching = False
        self._lost = False  # the watched directory went away: re-read often
        # A read that fails (on_role raised: a bug) is logged; the next one
        # (the periodic re-read at the latest) applies the role again.
        self._guarded_read = Guarded("cluster: applying the role file", self._read)

    def startService(self):
        super().startService()
        self._start_watch()
        self._guarded_read()
        self._schedule_recheck()

    def _start_watch(self, quiet=False, create=True):
        if self._factory is None:
            return
        from twisted.internet import inotify

        directory = os.path.dirname(self.path)
        notifier = None
        try:
            if create:
                os.makedirs(directory, exist_ok=True)
            elif not os.path.isdir(directory):
                return  # still gone: whoever recreates it, we do not
            notifier = self._factory()
            notifier.startReading()
            mask = (inotify.IN_CLOSE_WRITE | inotify.IN_MODIFY | inotify.IN_CREATE
                    | inotify.IN_DELETE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM
                    | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_ATTRIB)
            notifier.watch(FilePath(directory), mask=mask, callbacks=[self._event])
        except Exception as e:  # no inotify, no directory: fall back to polling
            if notifier is not None:
                notifier.loseConnection()
            if quiet:
                return
            log.warn("cluster: cannot watch {dir} ({err}); re-reading the role file "
                     "every {s} s instead", dir=directory, err=e, s=RECHECK)
            return
        self._notifier = notifier
        self.watching = True
        self._lost = False

    def _event(self, _watch, filepath, _mask):
        # INotify reports bytes paths; events on the directory itself (moved,
        # deleted) count too.
        from twisted.internet import inotify

        path = os.fsdecode(filepath.path)
        if path not in (self.path, os.path.dirname(self.path)):
            return
        if _mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF):
            self._unwatch()  # the directory went away: re-watch it once it is back
            self._lost = True
            if self._recheck is not None and self._recheck.active():
                self._recheck.cancel()
            self._schedule_recheck()
        if self._pending is not None and self._pending.active():
            self._pending.reset(DEBOUNCE)
        else:
            self._pending = self._clock.callLater(DEBOUNCE, self._guarded_read)

    def _schedule_recheck(self):
        delay = REWATCH if self._lost and not self.watching else RECHECK
        self._recheck = self._clock.callLater(delay, self._periodic)

    def _periodic(self):
        self._schedule_recheck()  # first: whatever this re-read does, the next one comes
        self._guarded_read(rewatch=True)

    def _read(self, rewatch=False):
        if rewatch and self._factory is not None and not self.watching:
            self._start_watch(quiet=True, create=not self._lost)
        role, problem = read_role_file(self.path)
        if problem is not None:
            if problem != self.problem:
                kept = self.current or "no override (the configured role)"
                log.error("cluster: role file {path} {problem}; keeping {kept} until it is "
                          "fixed", path=self.path, problem=problem, kept=kept)
            self.problem = problem
            return  # bad content never changes the role
        if self.problem is not None:
            log.info("cluster: role file {path} is valid again", path=self.path)
            self.problem = None
        if role != self.current:
            self._on_role(role)
            self.current = role
            log.info("cluster: role file {path} says {role}", path=self.path,
                     role=role or "(no override)")

    def describe_problem(self):
        """'role file PATH is ...' while the file has a problem, else None."""
        return None if self.problem is None else f"role file {self.path} {self.problem}"

    def stopService(self):
        super().stopService()
        for call in (self._pending, self._recheck):
            if call is not None and call.active():
                call.cancel()
        self._unwatch()

    def _unwatch(self):
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
        self.watching = False
