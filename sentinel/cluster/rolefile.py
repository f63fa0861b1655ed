"""
The role file keepalived writes on every VRRP transition: exactly
``leader`` or ``follower`` (surrounding whitespace ignored) overrides the
configured role; missing, empty or anything else means no override.

L{RoleFileWatcher} watches the file's DIRECTORY with INotify, so an
in-place write, a replace by rename and a delete are all seen, and
re-reads the file a moment after the last event (an in-place write is a
truncate followed by a write: reading at the truncate would flap the role).
A slow periodic re-read covers lost events (queue overflow, directory
recreated).  Reading never raises: an unreadable file is "no override".
"""

import os

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.python.filepath import FilePath

log = Logger()

MAX_READ = 256
DEBOUNCE = 0.05  # seconds after the last event
RECHECK = 5.0  # seconds between safety re-reads


def parse_role(content: bytes):
    """'leader', 'follower' or None."""
    try:
        word = content.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return word if word in ("leader", "follower") else None


def read_role_file(path):
    try:
        with open(path, "rb") as f:
            content = f.read(MAX_READ + 1)
    except OSError:
        return None
    return None if len(content) > MAX_READ else parse_role(content)


class RoleFileWatcher(Service):
    """
    Calls ``on_role(role_or_None)`` with the file's override at start and
    whenever it changes.  clock: IReactorTime; inotify_factory: callable()
    -> INotify-like (None: only the periodic re-read).
    """

    def __init__(self, path, on_role, clock, inotify_factory=None):
        self.path = path
        self._on_role = on_role
        self._clock = clock
        self._factory = inotify_factory
        self._notifier = None
        self._pending = None
        self._recheck = None
        self.current = None
        self.watching = False

    def startService(self):
        super().startService()
        self._start_watch()
        self._read()
        self._schedule_recheck()

    def _start_watch(self, quiet=False):
        if self._factory is None:
            return
        from twisted.internet import inotify

        directory = os.path.dirname(self.path)
        notifier = None
        try:
            os.makedirs(directory, exist_ok=True)
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

    def _event(self, _watch, filepath, _mask):
        # INotify reports bytes paths; events on the directory itself (moved,
        # deleted) count too.
        from twisted.internet import inotify

        path = os.fsdecode(filepath.path)
        if path not in (self.path, os.path.dirname(self.path)):
            return
        if _mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF):
            self._unwatch()  # the directory went away: the re-check re-watches
        if self._pending is not None and self._pending.active():
            self._pending.reset(DEBOUNCE)
        else:
            self._pending = self._clock.callLater(DEBOUNCE, self._read)

    def _schedule_recheck(self):
        self._recheck = self._clock.callLater(RECHECK, self._periodic)

    def _periodic(self):
        if self._factory is not None and not self.watching:
            self._start_watch(quiet=True)
        self._read()
        self._schedule_recheck()

    def _read(self):
        role = read_role_file(self.path)
        if role != self.current:
            log.info("cluster: role file {path} says {role}", path=self.path,
                     role=role or "(no override)")
            self.current = role
            self._on_role(role)

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
