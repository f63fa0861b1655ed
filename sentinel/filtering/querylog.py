"""
The query log: a bounded in-memory buffer the DNS server appends to for
every answered query (O(1), never blocks, never raises), flushed in
batches off the hot path, plus the retention job.

Flushing: with a ``writer`` (the daemon: L{sentinel.store.logpipe}), the
raw rows go, five times a second, to the writer's spool file, in small
frames (250 rows: encoding one takes under 1 ms), one per reactor turn so
that DNS packets are served in between; a child process at the lowest priority
stores them in the database when the CPU is free, so a burst of queries
is logged in full without the database work slowing the answers.  Without
one (tests, tools), the rows are decoded here and written with the
store's ``append_query_logs``.  Either way: if the store is slow or down,
rows wait (a failed batch goes back to the front of the buffer, or stays
in the spool); when the buffer is full, new rows are dropped and counted.
DNS never waits for any of this.

Readers (the query-log and statistics API) call ``flush()``: it sends
what is buffered and waits until the writer has stored everything sent
so far, for ``settle_timeout`` seconds at most (after a long burst they
answer from what is stored, and the rest follows).
"""

from collections import deque

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sentinel.dns.decision import IQueryLog
from sentinel.filtering import settings
from sentinel.periodic import looping_call
from sentinel.store.database import StoreUnavailable
from sentinel.store.logwriter import Names, normalise

log = Logger()
CLEAR_TIMEOUT = 10.0  # seconds DELETE /api/query-logs waits for the writer, at most
DAY = 86400.0
WRITER_FRAME_ROWS = 250  # rows per frame to the writer (see QueryLogService.__init__)
WRITER_INTERVAL = 0.2  # seconds between flushes to the writer


@implementer(IQueryLog)
class QueryLog:
    # ~2 s of queries at the highest rate measured (docs/PERFORMANCE.md);
    # a row is ~200 bytes while it waits.
    def __init__(self, capacity=200_000):
        self.capacity = capacity
        self._names = Names()
        self.enabled = True
        self.buffer = deque()
        self.dropped = 0  # rows lost because the buffer was full
        self.written = 0  # rows stored
        self.failures = 0  # failed flushes
        self.spooled = _none  # rows handed to the writer and not stored yet
        self.decisions = {}  # log decision name -> queries seen

    def record(self, *row):
        """
        record(ts, client_ip, client_name, qname, qtype, decision, reason,
        upstream, rcode, duration_ms): the arguments are the row as they
        come (the call packs them into the tuple that is kept: no second
        tuple per query).  A malformed row is dropped by the writer, counted.
        """
        try:
            decision = row[5]
            counts = self.decisions
            counts[decision] = counts.get(decision, 0) + 1
            if not self.enabled:
                return
            buffer = self.buffer
            if len(buffer) >= self.capacity:
                self.dropped += 1
                return
            buffer.append(row)
        except Exception:  # the contract: never raise into the DNS path
            self.dropped += 1

    def waiting(self):
        """Rows recorded and not stored yet (buffered, or with the writer)."""
        return len(self.buffer) + self.spooled()

    def take_raw(self, n):
        """Up to n rows from the front, as recorded."""
        buf = self.buffer
        if n >= len(buf):
            rows = list(buf)
            buf.clear()
            return rows
        pop = buf.popleft
        return [pop() for _ in range(n)]

    def take(self, n):
        """Up to n rows from the front, names decoded for storage."""
        rows, bad = normalise(self.take_raw(n), self._names)
        self.dropped += bad  # malformed rows from a buggy caller
        return rows

    def put_back(self, rows):
        """Return a failed batch to the front, as far as there is room."""
        room = self.capacity - len(self.buffer)
        keep = rows[:max(0, room)]
        self.dropped += len(rows) - len(keep)
        for row in reversed(keep):
            self.buffer.appendleft(row)

    def clear(self):
        self.buffer.clear()


class QueryLogService(Service):
    """
    Flushes the buffer every ``interval`` seconds (batches of ``batch``
    rows, each one transaction) and applies retention every
    ``retention_interval`` seconds, using the filtering settings (days, max
    rows, enabled) from the store.  ``writer``: see the module doc.
    """

    def __init__(self, querylog, store, clock, ready=None, interval=None, batch=None,
                 retention_interval=3600.0, writer=None, settle_timeout=5.0,
                 clear_timeout=CLEAR_TIMEOUT):
        self.querylog = querylog
        self.store = store
        self.clock = clock
        self.writer = writer
        self.settle_timeout = settle_timeout
        self.clear_timeout = clear_timeout
        if writer is not None:
            querylog.spooled = lambda: writer.pending_rows
            writer.on_failure = self._writer_failed
        self._ready = ready or (lambda: succeed(None))
        # In-process: larger transactions cost less per row; a transaction
        # holds the database's write lock, so it stays short (~20 ms).  To
        # the writer: frames small enough to encode without delaying DNS
        # answers: each is encoded in one reactor turn, and rows logged a
        # second ago are cold in the CPU caches: 2000 of them took 2-4 ms
        # (every query arriving meanwhile waited), 250 take under 1 ms.
        # The writer stores the frames waiting together, in one transaction.
        # Flushed every 0.2 s rather than every second, for the same reason.
        self.interval = interval or (WRITER_INTERVAL if writer is not None else 1.0)
        self.batch = batch or (WRITER_FRAME_ROWS if writer is not None else 2000)
        self.retention_interval = retention_interval
        self.settings = settings.filtering(None)
        self._flushing = None
        self._refused = None  # why the last flush could not hand rows on, or None
        self._loops = []
        self._unsubscribe = None

    def startService(self):
        super().startService()
        self._unsubscribe = self.store.subscribe(self._changed)
        flush = looping_call("the query log flush", lambda: self.flush(wait=False), self.clock)
        self._loops.append(flush)
        flush.start(self.interval, now=False)

        def ready(_):
            if not self.running:
                return
            if self.writer is not None:
                self.writer.start()  # recovers a spool left by a killed daemon
            retention = LoopingCall(self.retention)
            retention.clock = self.clock
            self._loops.append(retention)
            retention.start(self.retention_interval, now=True).addErrback(
                lambda f: log.failure("query log retention loop stopped", f))

        self._ready().addCallback(ready)

    def stopService(self):
        super().stopService()
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        d = self.flush(wait=False, stopping=True)
        if self.writer is not None:
            d.addBoth(lambda _: self.writer.stop())
        return d

    def _changed(self, revision, entities):
        for e in entities:
            if e.kind == "setting" and e.key == settings.FILTERING:
                self._apply_settings(e.data)

    def _apply_settings(self, data):
        self.settings = settings.filtering(data)
        self.querylog.enabled = self.settings["query_log_enabled"]
        if not self.querylog.enabled:
            self.querylog.clear()

    def flush(self, wait=True, stopping=False):
        """
        Write everything buffered now; one flush at a time.  Called while
        one runs (an API read), it flushes again after it: the running one
        does not include the rows recorded since it started.  With a
        writer and ``wait``: then waits until it has stored what it was
        sent (``settle_timeout`` at most); the periodic flush does not.
        ``stopping``: the daemon stops; the rows go to the writer's spool
        even if the store is down (the next start stores them).
        """
        if self._flushing is not None:
            after = Deferred()
            self._flushing.addBoth(lambda result: after.callback(None) or result)
            return after.addCallback(lambda _: self.flush(wait, stopping))
        if not self.querylog.buffer:
            d = succeed(None)
        else:
            d = self._flushing = ensureDeferred(self._flush(stopping))

            def done(result):
                self._flushing = None
                return result

            d.addBoth(done)
        if wait and self.writer is not None:
            d.addCallback(lambda _: self.writer.settled(self.settle_timeout))
        return d

    async def _flush(self, stopping=False):
        querylog = self.querylog
        if self.writer is not None:
            if not self.store.available:
                if stopping:  # into the spool, for the next start
                    return self._keep_in_spool()
                return  # not migrated yet, or the database is down: keep the rows
            return await self._flush_to_writer()
        pending = len(querylog.buffer)
        while pending > 0 and querylog.buffer:
            n = min(self.batch, pending)
            rows = querylog.take(n)
            pending -= n
            try:
                if rows:
                    await self.store.append_query_logs(rows)
                stored = len(rows)
            except Exception as e:
                querylog.failures += 1
                querylog.put_back(rows)
                self._refused = f"storing rows fails ({e})"
                log.warn("query log: writing {n} rows failed ({e}); keeping them buffered",
                         n=len(rows), e=e)
                return
            self._refused = None
            querylog.written += stored

    async def _flush_to_writer(self):
        """
        What is buffered now, in frames of ``batch`` rows, one frame per
        reactor turn.  Rows the writer cannot take (its spool is full, or
        it is stopped) go back to the front of the buffer and sending
        stops; it stores the others in its own time (counted when it has).
        """
        querylog = self.querylog
        pending = len(querylog.buffer)
        while pending > 0 and querylog.buffer:
            n = min(self.batch, pending)
            rows = querylog.take_raw(n)
            pending -= n
            try:
                d = self.writer.append(rows)
            except Exception as e:
                querylog.failures += 1
                querylog.put_back(rows)
                self._refused = f"the writer cannot take rows ({e})"
                log.warn("query log: the writer cannot take {n} rows ({e}); keeping them "
                         "buffered", n=len(rows), e=e)
                return
            self._refused = None
            d.addCallbacks(self._stored, self._lost, errbackArgs=(len(rows),))
            if pending > 0:
                await _turn(self.clock)

    def _keep_in_spool(self):
        querylog = self.querylog
        while querylog.buffer:
            rows = querylog.take_raw(self.batch)
            try:
                self.writer.keep(rows)
            except Exception as e:
                querylog.dropped += len(rows) + len(querylog.buffer)
                log.warn("query log: {n} rows buffered at stop are lost ({e})",
                         n=len(rows) + len(querylog.buffer), e=e)
                querylog.clear()

    def problem(self):
        """
        One line for ``/api/health`` (``problems.queryLog``: shown, the
        status is not changed, DNS is not affected) while rows are not
        being stored; None otherwise.
        """
        why = [p for p in (self._refused, getattr(self.writer, "problem", None)) if p]
        if not why:
            return None
        return "query log: {}; {} rows waiting, {} dropped since start".format(
            "; ".join(why), self.querylog.waiting(), self.querylog.dropped)

    async def clear(self):
        """
        ``DELETE /api/query-logs``: the buffered rows and every row stored
        or on its way to the database so far go; not one of them is stored
        later (with the writer: L{sentinel.store.logpipe.QueryLogWriter.clear}).
        A database that does not take the clear within ``clear_timeout``
        seconds (locked, failing) gets StoreUnavailable (503) instead of a
        request that hangs; the clear stays queued and is done later.
        """
        if self.writer is not None:
            if not self.store.available:  # the writer touches no database not migrated
                raise StoreUnavailable("the database is not available")
            self.querylog.clear()
            await self._within(self.writer.clear(self.clock.seconds()), self.clear_timeout)
        else:
            self.querylog.clear()
            await self.flush()
            await self.store.prune_query_logs(0, 0)

    def _within(self, d, timeout):
        """
        d's result, or StoreUnavailable after ``timeout`` seconds (d goes on:
        the clear stays queued, in order with the frames, and is done once
        the database takes writes again).
        """
        waiter = Deferred()

        def late():
            waiter.errback(StoreUnavailable(
                f"the database did not take the clear within {timeout:g} s (it is locked or "
                "failing); the clear stays queued and is done as soon as the database takes "
                "writes: no row recorded before it will be stored"))

        timer = self.clock.callLater(timeout, late)

        def done(result):
            if timer.active():
                timer.cancel()
                (waiter.errback if isinstance(result, Failure) else waiter.callback)(result)
            elif isinstance(result, Failure):
                log.failure("query log: the queued clear failed", result)
            return None

        d.addBoth(done)
        return waiter

    def _writer_failed(self):
        self.querylog.failures += 1

    def _stored(self, result):
        stored, bad = result
        self.querylog.written += stored
        self.querylog.dropped += bad

    def _lost(self, failure, n):
        self.querylog.dropped += n
        log.warn("query log: {n} rows were not stored ({e})", n=n,
                 e=failure.getErrorMessage())

    async def retention(self):
        """Drop rows older than the retention period and beyond the row cap."""
        try:
            entity = await self.store.get("setting", settings.FILTERING)
            self._apply_settings(entity.data if entity else None)
            before = self.clock.seconds() - self.settings["query_log_days"] * DAY
            await self.store.prune_query_logs(before, self.settings["query_log_max_rows"])
        except Exception as e:
            log.warn("query log retention failed ({e}); will retry", e=e)


def _turn(clock):
    """A Deferred that fires at the next reactor turn (after pending I/O)."""
    d = Deferred()
    clock.callLater(0, d.callback, None)
    return d


def _none():
    return 0
