"""
The query log: a bounded in-memory buffer the DNS server appends to for
every answered query (O(1), never blocks, never raises), flushed in
batches to the store off the hot path, plus the retention job.

If the store is slow or down, rows wait in the buffer (a failed batch goes
back to the front); when the buffer is full, new rows are dropped and
counted.  DNS never waits for any of this.
"""

from collections import deque

from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from sentinel.dns.decision import IQueryLog
from sentinel.filtering import settings
from sentinel.filtering.names import wire_to_text

log = Logger()
DAY = 86400.0


@implementer(IQueryLog)
class QueryLog:
    def __init__(self, capacity=50_000):
        self.capacity = capacity
        self.enabled = True
        self.buffer = deque()
        self.dropped = 0  # rows lost because the buffer was full
        self.written = 0  # rows stored
        self.failures = 0  # failed flushes
        self.decisions = {}  # log decision name -> queries seen

    def record(self, ts, client_ip, client_name, qname, qtype, decision, reason,
               upstream, rcode, duration_ms):
        try:
            counts = self.decisions
            counts[decision] = counts.get(decision, 0) + 1
            if not self.enabled:
                return
            if len(self.buffer) >= self.capacity:
                self.dropped += 1
                return
            self.buffer.append((ts, client_ip, client_name, qname, qtype, decision, reason,
                                upstream, rcode, duration_ms))
        except Exception:  # the contract: never raise into the DNS path
            self.dropped += 1

    def take(self, n):
        """Up to n rows from the front, names decoded for storage."""
        rows = []
        names = {}
        buf = self.buffer
        while buf and len(rows) < n:
            row = buf.popleft()
            try:
                qname = row[3]
                text = names.get(qname)
                if text is None:
                    text = names[qname] = _text(qname)
                rows.append((float(row[0]), str(row[1]), str(row[2] or ""), text, int(row[4]),
                             str(row[5]), str(row[6] or ""), str(row[7] or ""),
                             None if row[8] is None else int(row[8]),
                             None if row[9] is None else float(row[9])))
            except (TypeError, ValueError):
                self.dropped += 1  # a malformed row from a buggy caller
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


def _text(qname):
    if isinstance(qname, (bytes, bytearray)):
        return wire_to_text(bytes(qname))
    return str(qname)


class QueryLogService(Service):
    """
    Flushes the buffer every ``interval`` seconds (batches of ``batch``
    rows) and applies retention every ``retention_interval`` seconds, using
    the filtering settings (days, max rows, enabled) from the store.
    """

    def __init__(self, querylog, store, clock, ready=None, interval=1.0, batch=2000,
                 retention_interval=3600.0):
        self.querylog = querylog
        self.store = store
        self.clock = clock
        self._ready = ready or (lambda: succeed(None))
        self.interval = interval
        self.batch = batch
        self.retention_interval = retention_interval
        self.settings = settings.filtering(None)
        self._flushing = None
        self._loops = []
        self._unsubscribe = None

    def startService(self):
        super().startService()
        self._unsubscribe = self.store.subscribe(self._changed)
        flush = LoopingCall(self.flush)
        flush.clock = self.clock
        self._loops.append(flush)
        flush.start(self.interval, now=False).addErrback(
            lambda f: log.failure("query log flush loop stopped", f))

        def ready(_):
            if not self.running:
                return
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
        return self.flush()

    def _changed(self, revision, entities):
        for e in entities:
            if e.kind == "setting" and e.key == settings.FILTERING:
                self._apply_settings(e.data)

    def _apply_settings(self, data):
        self.settings = settings.filtering(data)
        self.querylog.enabled = self.settings["query_log_enabled"]
        if not self.querylog.enabled:
            self.querylog.clear()

    def flush(self):
        """Write everything buffered now; one flush at a time."""
        if self._flushing is not None:
            return self._flushing
        if not self.querylog.buffer:
            return succeed(None)
        d = self._flushing = ensureDeferred(self._flush())

        def done(result):
            self._flushing = None
            return result

        return d.addBoth(done)

    async def _flush(self):
        pending = len(self.querylog.buffer)
        while pending > 0 and self.querylog.buffer:
            rows = self.querylog.take(min(self.batch, pending))
            pending -= len(rows)
            try:
                await self.store.append_query_logs(rows)
            except Exception as e:
                self.querylog.failures += 1
                self.querylog.put_back(rows)
                log.warn("query log: writing {n} rows failed ({e}); keeping them buffered",
                         n=len(rows), e=e)
                return
            self.querylog.written += len(rows)

    async def retention(self):
        """Drop rows older than the retention period and beyond the row cap."""
        try:
            entity = await self.store.get("setting", settings.FILTERING)
            self._apply_settings(entity.data if entity else None)
            before = self.clock.seconds() - self.settings["query_log_days"] * DAY
            await self.store.prune_query_logs(before, self.settings["query_log_max_rows"])
        except Exception as e:
            log.warn("query log retention failed ({e}); will retry", e=e)
