"""
The query-log buffer and writer: O(1) bounded appends, batched flushes,
DNS never waits and nothing is lost while the store merely hiccups,
retention by age and count.
"""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.filtering.querylog import QueryLog, QueryLogService
from sentinel.store import QueryLogFilter
from tests.filtering.helpers import wire
from tests.filtering.storehelp import open_store


def record(log, n=1, name="ads.example.com", ts=1000.0, decision="blocked"):
    for i in range(n):
        log.record(ts + i, "192.168.1.5", "tv", wire(name), 1, decision, "blocklist:1", "",
                   3, 0.25)


class FlakyStore:
    """Stands in for a store whose writes hang or fail (the rest is unused)."""

    def __init__(self):
        self.batches = []
        self.mode = "ok"
        self.pending = []

    def subscribe(self, observer):
        return lambda: None

    def append_query_logs(self, rows):
        if self.mode == "fail":
            return fail(RuntimeError("database is down"))
        if self.mode == "hang":
            d = Deferred()
            self.pending.append((d, rows))
            return d
        self.batches.append(rows)
        return succeed(None)


class BufferTests(SynchronousTestCase):
    def setUp(self):
        self.log = QueryLog(capacity=5)
        self.store = FlakyStore()
        self.service = QueryLogService(self.log, self.store, Clock(), batch=2)

    def test_bounded_drops_are_counted(self):
        record(self.log, 8)
        self.assertEqual((len(self.log.buffer), self.log.dropped), (5, 3))
        self.assertEqual(self.log.decisions, {"blocked": 8})

    def test_bad_rows_do_not_wedge_the_writer(self):
        self.log.record(None, None, None, None, None, None, None, None, None, None)
        self.log.record("x", "1.2.3.4", "", b"\x01a\x00", "A", "forwarded", "", "", "?", "")
        record(self.log, 1)
        self.successResultOf(self.service.flush())
        self.assertEqual([len(b) for b in self.store.batches], [1])
        self.assertEqual((len(self.log.buffer), self.log.dropped), (0, 2))

    def test_flush_in_batches_with_names_decoded(self):
        record(self.log, 5)
        self.successResultOf(self.service.flush())
        self.assertEqual([len(b) for b in self.store.batches], [2, 2, 1])
        row = self.store.batches[0][0]
        self.assertEqual(row, (1000.0, "192.168.1.5", "tv", "ads.example.com", 1, "blocked",
                               "blocklist:1", "", 3, 0.25))
        self.assertEqual((len(self.log.buffer), self.log.written), (0, 5))

    def test_store_down_keeps_rows_and_dns_is_not_delayed(self):
        record(self.log, 3)
        self.store.mode = "fail"
        self.successResultOf(self.service.flush())
        self.assertEqual((len(self.log.buffer), self.log.failures, self.log.dropped), (3, 1, 0))
        record(self.log, 4)  # still O(1) appends; only what does not fit is dropped
        self.assertEqual((len(self.log.buffer), self.log.dropped), (5, 2))
        self.store.mode = "ok"
        self.successResultOf(self.service.flush())
        self.assertEqual(sum(len(b) for b in self.store.batches), 5)
        self.assertEqual([r[0] for b in self.store.batches for r in b],
                         [1000.0, 1001.0, 1002.0, 1000.0, 1001.0])

    def test_slow_store_one_flush_at_a_time(self):
        record(self.log, 2)
        self.store.mode = "hang"
        first = self.service.flush()
        record(self.log, 2)  # recording goes on meanwhile
        again = self.service.flush()  # e.g. an API read: must see the rows just recorded
        self.assertEqual(len(self.store.pending), 1)  # not two flushes at once
        d, rows = self.store.pending.pop()
        d.callback(None)
        self.successResultOf(first)
        self.assertNoResult(again)  # the second flush, for the rows recorded meanwhile
        self.assertEqual(len(self.store.pending), 1)
        d, rows = self.store.pending.pop()
        self.assertEqual([r[0] for r in rows], [1000.0, 1001.0])
        d.callback(None)
        self.successResultOf(again)
        self.assertEqual((len(self.log.buffer), self.log.written), (0, 4))


class FrameWriter:
    """
    Stands in for the writer process: takes frames (raises when told it
    cannot, like a full spool), stores them when told, and settles.
    """

    def __init__(self, clock):
        self.clock = clock
        self.frames = []
        self.refuse_at = None
        self.pending_rows = 0
        self.on_failure = None
        self.waiters = []

    def append(self, rows):
        if len(self.frames) == self.refuse_at:
            raise RuntimeError("the query-log spool is full")
        d = Deferred()
        self.frames.append((rows, d))
        self.pending_rows += len(rows)
        return d

    def store(self, k):
        rows, d = self.frames[k]
        self.pending_rows -= len(rows)
        d.callback((len(rows), 0))
        if not self.pending_rows:
            for w in self.waiters:
                w.callback(None)
            self.waiters = []

    def start(self):
        pass

    def stop(self):
        return succeed(None)

    def settled(self, timeout):
        if not self.pending_rows:
            return succeed(None)
        d = Deferred()
        self.waiters.append(d)
        self.clock.callLater(timeout, lambda: d.called or d.callback(None))
        return d


class AvailableStore(FlakyStore):
    available = True


class FramesTests(SynchronousTestCase):
    def setUp(self):
        self.log = QueryLog(capacity=100)
        self.clock = Clock()
        self.writer = FrameWriter(self.clock)
        self.service = QueryLogService(self.log, AvailableStore(), self.clock, batch=4,
                                       writer=self.writer, settle_timeout=5.0)

    def test_one_frame_per_reactor_turn_and_readers_wait_until_stored(self):
        record(self.log, 10)
        d = self.service.flush()
        self.assertEqual([len(rows) for rows, _ in self.writer.frames], [4])
        self.clock.advance(0)
        self.clock.advance(0)
        self.assertEqual([len(rows) for rows, _ in self.writer.frames], [4, 4, 2])
        self.assertEqual((len(self.log.buffer), self.log.waiting()), (0, 10))
        record(self.log, 3)  # recorded meanwhile: left for the next flush
        self.writer.store(0)
        self.writer.store(1)
        self.assertNoResult(d)  # a reader waits for what was sent before it asked
        self.writer.store(2)
        self.successResultOf(d)
        self.assertEqual((self.log.written, len(self.log.buffer)), (10, 3))
        self.assertEqual([r[0] for rows, _ in self.writer.frames for r in rows],
                         [1000.0 + i for i in range(10)])

    def test_the_daemon_sends_small_frames_five_times_a_second(self):
        # Each frame is encoded in one reactor turn while DNS queries wait:
        # small ones, often, keep the answers' latency tail short.
        service = QueryLogService(self.log, AvailableStore(), self.clock, writer=self.writer)
        self.log.capacity = 1000
        service.startService()
        self.addCleanup(service.stopService)
        record(self.log, 600)
        self.clock.advance(0.19)
        self.assertEqual(self.writer.frames, [])
        self.clock.advance(0.01)
        for _ in range(3):
            self.clock.advance(0)
        self.assertEqual([len(rows) for rows, _ in self.writer.frames], [250, 250, 100])

    def test_a_failing_periodic_flush_does_not_stop_it(self):
        class FailingOnce(AvailableStore):
            failed = False

            @property
            def available(self):
                if not self.failed:
                    self.failed = True
                    raise RuntimeError("a bug")
                return True

        service = QueryLogService(self.log, FailingOnce(), self.clock, writer=self.writer)
        service.startService()
        self.addCleanup(service.stopService)
        record(self.log, 10)
        self.clock.advance(0.2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual((self.writer.frames, len(self.log.buffer)), ([], 10))
        self.clock.advance(0.2)  # the next flush sends them
        self.assertEqual([len(rows) for rows, _ in self.writer.frames], [10])
        self.assertEqual(len(self.log.buffer), 0)

    def test_the_periodic_flush_does_not_wait_and_rows_with_the_writer_use_no_buffer(self):
        self.log.capacity = 12
        record(self.log, 10)
        d = self.service.flush(wait=False)
        self.clock.advance(0)
        self.clock.advance(0)
        self.successResultOf(d)  # nothing is stored yet
        self.assertEqual((len(self.log.buffer), self.log.waiting()), (0, 10))
        record(self.log, 12)  # a slow writer (a burst): the buffer still has room
        self.assertEqual((len(self.log.buffer), self.log.dropped), (12, 0))
        for k in range(3):
            self.writer.store(k)
        self.assertEqual((self.log.written, self.log.waiting()), (10, 12))

    def test_a_reader_does_not_wait_for_a_whole_backlog(self):
        record(self.log, 4)
        d = self.service.flush()
        self.assertNoResult(d)
        self.clock.advance(5.0)  # settle_timeout: answers from what is stored
        self.successResultOf(d)
        self.assertEqual(self.log.waiting(), 4)

    def test_rows_the_writer_refuses_go_back_in_order_and_sending_stops(self):
        record(self.log, 16)
        self.writer.refuse_at = 1  # the second frame: the spool is full
        self.service.flush(wait=False)
        self.clock.advance(0)
        self.assertEqual(len(self.writer.frames), 1)  # nothing more sent after a refusal
        self.writer.store(0)
        self.assertEqual((self.log.written, self.log.failures), (4, 1))
        self.assertEqual([row[0] for row in self.log.buffer], [1004.0 + i for i in range(12)])
        self.writer.refuse_at = None
        self.service.flush(wait=False)
        for _ in range(3):
            self.clock.advance(0)
        self.assertEqual(len(self.log.buffer), 0)

    def test_rows_not_being_stored_show_in_health_and_dns_is_not_affected(self):
        self.assertIsNone(self.service.problem())
        record(self.log, 120)  # over the buffer's capacity: 20 dropped
        self.writer.refuse_at = 0
        self.service.flush(wait=False)
        self.assertEqual(self.service.problem(), "query log: the writer cannot take rows (the "
                         "query-log spool is full); 100 rows waiting, 20 dropped since start")
        self.writer.problem = "storing rows fails (database is locked)"
        self.assertIn("spool is full); storing rows fails (database is locked); 100 rows",
                      self.service.problem())
        self.writer.refuse_at = self.writer.problem = None
        self.service.flush(wait=False)
        self.assertIsNone(self.service.problem())

    def test_rows_lost_by_the_writer_are_counted(self):
        record(self.log, 3)
        self.service.flush(wait=False)
        self.writer.frames[0][1].errback(RuntimeError("the query-log writer is stopped"))
        self.assertEqual((self.log.written, self.log.dropped), (0, 3))
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class WriterTests(TestCase):
    async def test_periodic_flush_retention_and_disabling(self):
        store = await open_store(self)
        clock = Clock()
        clock.advance(10 * 86400)
        log = QueryLog()
        # The retention loop waits for the store to be ready: never here, so
        # the test runs retention itself, when it wants.
        service = QueryLogService(log, store, clock, interval=1.0, ready=Deferred)
        service.startService()
        self.addCleanup(service.stopService)
        old = 10 * 86400 - 8 * 86400
        record(log, 3, ts=old)
        record(log, 3, ts=clock.seconds() - 60)
        clock.advance(1.0)  # the periodic flush
        await service.flush()
        self.assertEqual(await store.count_query_logs(), 6)
        await service.retention()
        self.assertEqual(await store.count_query_logs(), 3)  # 7 days by default
        await store.put("setting", "filtering", {"query_log_max_rows": 1000,
                                                 "query_log_days": 365})
        record(log, 1200, ts=clock.seconds())
        await service.flush()
        await service.retention()
        rows = await store.query_logs(QueryLogFilter(limit=5000))
        self.assertEqual(len(rows), 1000)
        self.assertEqual(rows[0]["ts"], clock.seconds() + 1199)  # the newest are kept
        await store.put("setting", "filtering", {"query_log_enabled": False})
        record(log, 5)
        self.assertEqual(len(log.buffer), 0)
        self.assertEqual(log.decisions["blocked"], 1211)  # metrics still count
