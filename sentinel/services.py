"""Small generic services used by the wiring in L{sentinel.tap}."""

from twisted.application.service import Service
import sqlite3

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from sentinel.startup import database_name, explain_listen_error, explain_store_error, fatal
from sentinel.store.database import StoreUnavailable
from sentinel.store.migrations import MigrationError

log = Logger()


class ListeningService(Service):
    """
    Listen in privilegedStartService (before twistd drops privileges) and
    turn bind failures into one actionable line and a non-zero exit.

    listen: callable() -> IListeningPort (or a list of them).
    close_connections: callable(), called when stopping, once the ports are
    closed (so nothing can connect again), to end the open connections.
    """

    def __init__(self, what, port, proto, listen, close_connections=None):
        self.what, self.port, self.proto = what, port, proto
        self._listen = listen
        self._close_connections = close_connections
        self.ports = []

    def privilegedStartService(self):
        super().privilegedStartService()
        if not self.ports:
            self._bind()

    def startService(self):
        super().startService()
        if not self.ports:
            self._bind()

    def _bind(self):
        try:
            result = self._listen()
        except CannotListenError as e:
            fatal(explain_listen_error(self.what, self.port, self.proto, e))
        self.ports = list(result) if isinstance(result, (list, tuple)) else [result]

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        from twisted.internet.defer import gatherResults

        d = gatherResults([maybeDeferred(p.stopListening) for p in ports])
        if self._close_connections is not None:
            d.addCallback(lambda _: self._close_connections())
        return d


class StoreService(Service):
    """
    Opens the store in the background: nothing waits for it, DNS included.
    If opening fails (database unreachable, disk trouble) it logs one line
    and tries again with backoff until it works or the daemon stops.

    ``when_ready()`` gives each caller its own Deferred, firing (at once if
    it already is) when the store is open and migrated; it never fails.
    ``when_failed()`` fires when an attempt to open it failed before it was
    ever open (once per caller; never if it opens at the first attempt).
    ``meanwhile()`` says in the log line what DNS does until it opens.
    """

    first_retry = 1.0
    max_retry = 30.0

    def __init__(self, store, clock=None, url=""):
        self.store = store
        self._clock = clock
        self._url = url
        self.problem = None  # why the last attempt to open failed (one line)
        self.ready = False
        self._waiters = []
        self._failed_waiters = []
        self._retry = None
        self.meanwhile = lambda: "DNS answers without filtering meanwhile"

    def when_ready(self):
        d = Deferred()
        if self.ready or getattr(self.store, "available", False):  # opened elsewhere (tests)
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def when_failed(self):
        d = Deferred()
        if self.problem is not None and not self.ready:
            d.callback(self.problem)
        else:
            self._failed_waiters.append(d)
        return d

    def current_problem(self):
        """For /api/health: why the store cannot be used now (it never
        opened, or the backend lost it at run time), or None."""
        lost = getattr(getattr(self.store, "db", None), "problem", None)
        if self.store.available:
            return lost  # e.g. SQLite: reads work, writes fail
        if not self.ready:
            # Still opening: a write that failed inside an attempt is explained
            # by _failed once the attempt has ended, in the words for opening.
            return self.problem
        return self.problem or lost

    def startService(self):
        super().startService()
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        self._attempt(self.first_retry)

    def _attempt(self, delay):
        self._retry = None
        self.store.start().addCallbacks(self._opened, self._failed, errbackArgs=(delay,))

    def _opened(self, _):
        if not self.running:
            return
        self.ready = True
        if self.problem is not None:
            log.info("the store {where} is open now", where=database_name(self._url))
        self.problem = None
        self._failed_waiters = []  # never fired: it opened
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _failed(self, failure, delay):
        if not self.running:
            return None  # stopped while opening: nothing to report
        self.problem = explain_store_error(self._url, failure.value)
        log.error("{problem}; {meanwhile}; retrying in {delay:.0f}s", problem=self.problem,
                  meanwhile=self.meanwhile(), delay=delay)
        if not failure.check(OSError, StoreUnavailable, MigrationError, sqlite3.Error):
            log.failure("unexpected error opening the store", failure)
        waiters, self._failed_waiters = self._failed_waiters, []
        for d in waiters:
            d.callback(self.problem)
        self._retry = self._clock.callLater(delay, self._attempt, min(delay * 2, self.max_retry))

    def stopService(self):
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        return self.store.stop()
