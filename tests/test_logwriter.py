"""
The query-log writer process (sentinel.store.logwriter) and the DNS
process's side of it (sentinel.store.logpipe): every row stored exactly
once, names decoded exactly like the rest of Sentinel does, malformed rows
skipped and counted, a frame the database refused or a dying child lost
sent again, a backlog waiting in the spool file rather than in memory —
on SQLite and PostgreSQL, with a real child process.
"""

import io
import marshal
import os
import random
import signal
import sqlite3
import sys
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.filtering.names import wire_to_text
from sentinel.filtering.querylog import QueryLog, QueryLogService
from sentinel.store import QueryLogFilter
from sentinel.store.database import StoreUnavailable
from sentinel.store.records import QUERY_LOG_COLUMNS
from sentinel.store.logpipe import QueryLogWriter, Spool, WriterError, _progress
from sentinel.store import logpipe, logwriter, migrations
from sentinel.store.logwriter import (
    FRAME, REF, FdReader, Names, SqliteSink, encode, frame, normalise, serve, text_name,
)
from sentinel.store import spoolfile
from sentinel.store.spoolfile import HEADER_SIZE
from tests.filtering.storehelp import open_store
from tests.ha.fakes import LogCapture


def wire(name):
    return b"".join(bytes([len(p)]) + p for p in name.encode().split(b".") if p) + b"\x00"


def row(ts, name="ads.example.com", decision="blocked", client="192.168.1.5"):
    return (ts, client, "tv", wire(name), 1, decision, "blocklist:1", "", 3, 0.25)


class NamesTests(SynchronousTestCase):
    def test_same_text_as_the_general_decoder(self):
        rng = random.Random(7)
        samples = [b"\x00", b"", b"\x03abc", b"\x03a.b\x01\\\x00", b"\x02A-\x03_x*\x00",
                   b"\x05h\xc3\xa9\x20\x7f\x00", b"\x01", wire("www.Example.COM")]
        for _ in range(3000):
            labels = [bytes(rng.choice(b"ab.-\\ \x00\xff\x7e\x21Z9")
                            for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(0, 4))]
            w = b"".join(bytes([len(x)]) + x for x in labels)
            samples.append(w + (b"\x00" if rng.random() < 0.8 else b""))
            samples.append(w[:rng.randint(0, len(w))])  # cut short
        for s in samples:
            self.assertEqual(text_name(s), wire_to_text(s), s)
        self.assertEqual(text_name("already.text"), "already.text")

    def test_names_without_escapes_decoded_by_their_shape_exactly(self):
        # The shortcut (text_name: a name's shape says which bytes are length
        # bytes) against names where a length byte is a printable character
        # (labels of 33+ bytes, "a", "." or "\\" as a length), a byte inside a
        # label that could pass for a length, bytes after the zero, no zero.
        rng = random.Random(11)
        samples = [b"\x2e" + b"a" * 46 + b"\x00", b"\x2e" + b"a" * 45 + b".\x00",
                   b"\x5c" + b"b" * 92 + b"\x00", b"\x61" + b"c" * 97 + b"\x00",
                   b"\x7f" + b"d" * 127 + b"\x00", b"\x28" + b"e" * 40 + b"\x00",
                   b"b" + b"c" * 97 + b"\x00",
                   b"\x01\xff\x00", b"\x03abc\x00\x00", b"\x03abc\x00x", b"\x00\x00",
                   b"\x01a\x01.\x00", b"\x03www\x07example\x03com\x00"]
        alphabet = b"ab.-\\ \x00\xff\x7e\x7f\x21Z9\x01\x02\x05\x2e\x20\x1f"
        for _ in range(20000):
            labels = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, rng.choice((3, 40)))))
                      for _ in range(rng.randint(0, 4))]
            w = b"".join(bytes([len(x)]) + x for x in labels)
            samples += [w + b"\x00", w[:rng.randint(0, len(w))],
                        bytes(rng.choice(b"\x00\x01\x02\x03.a\\") for _ in range(rng.randint(0, 8)))]
        for s in samples:
            self.assertEqual(text_name(s), wire_to_text(s), s)

    def test_shapes_remembered_are_bounded(self):
        for i in range(10_001):
            text_name(b"\x01a" * (i // 20 + 1) + bytes([i % 20 + 1]) + b"b" * (i % 20 + 1) + b"\x00")
        self.assertLessEqual(len(logwriter._SHAPES), 10_000)

    def test_cache_is_bounded(self):
        names = Names()
        for i in range(100_001):
            names.text(wire(f"n{i}.example"))
        self.assertLessEqual(len(names), 100_000)
        self.assertEqual(names.text(wire("n5.example")), "n5.example")


class RowsTests(SynchronousTestCase):
    def test_normalise_types_and_skips_malformed_rows(self):
        rows, bad = normalise([row(1000), (None,) * 10, ("x",) * 10, (1, 2, 3),
                               (5, "::1", None, b"\x00", "28", "local", None, None, None, None)],
                              Names())
        self.assertEqual(bad, 3)
        self.assertEqual(rows, [
            (1000.0, "192.168.1.5", "tv", "ads.example.com", 1, "blocked", "blocklist:1", "",
             3, 0.25),
            (5.0, "::1", "", ".", 28, "local", "", "", None, None)])

    def test_encode_leaves_out_what_cannot_be_sent(self):
        body, bad = encode([row(1), (object(),) * 10, row(2)])
        self.assertEqual(bad, 1)
        self.assertEqual([r[0] for r in marshal.loads(body)], [1, 2])


def sqlite_database(testcase):
    """A new SQLite database with the real schema: (a connection to it, a sink)."""
    path = os.path.join(tempfile.mkdtemp(), "test.db")
    conn = sqlite3.connect(path, isolation_level=None)
    testcase.addCleanup(conn.close)
    for _, _, statements in migrations.available_migrations("sqlite"):
        for statement in statements:
            conn.execute(statement)
    sink = SqliteSink(path)
    testcase.addCleanup(lambda: sink.conn and sink.conn.close())
    return conn, sink


class SqliteSinkTests(SynchronousTestCase):
    database = sqlite_database

    def test_every_row_stored_in_order(self):
        # Several rows per INSERT statement: what does not fill a statement is
        # stored too, in order (ids follow the rows).
        conn, sink = self.database()
        sent = []
        for n in (123, 50, 7, 1, 100):
            rows, _ = normalise([row(float(len(sent) + i), f"n{len(sent) + i}.example")
                                 for i in range(n)], Names())
            sink.write([(0, rows)])
            sent += rows
        stored = conn.execute("SELECT %s FROM query_log ORDER BY id"
                              % ", ".join(QUERY_LOG_COLUMNS)).fetchall()
        self.assertEqual(stored, sent)

    def test_a_row_the_database_refuses_is_dropped_and_counted(self):
        # Not the whole transaction failed again and again: the other rows
        # of the frames are stored, the bad ones counted in their frame's
        # answer.
        conn, sink = self.database()
        frames = [[row(1.0)] + unstorable(1.5), [row(2.0)],
                  [row(float("nan")), row(3.0)]]  # NaN: NULL in SQLite, and ts is NOT NULL
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        with os.fdopen(w, "wb") as f:
            f.write(b"".join(frame(encode(rows)[0]) for rows in frames))
        out = io.BytesIO()
        serve(FdReader(r), out, sink)
        self.assertEqual(out.getvalue().splitlines(), [b"ok 1 2", b"ok 1 0", b"ok 1 1"])
        self.assertEqual([r[0] for r in conn.execute("SELECT ts FROM query_log ORDER BY id")],
                         [1.0, 2.0, 3.0])


def unstorable(ts):
    """Rows normalise lets through that the database refuses (a bug upstream)."""
    return [(ts, "10.0.0.1", "tv", wire("a.example"), 2 ** 70, "cached", "", "", 0, 0.0),
            (ts, "10.0.0.1", "tv\ud800", wire("a.example"), 1, "cached", "", "", 0, 0.0)]


class _Sink:
    def __init__(self, fail=False):
        self.rows = []
        self.fail = fail

    def write(self, parts, run=None):
        if self.fail:
            raise RuntimeError("disk\nfull")
        for _, rows in parts:
            self.rows.extend(rows)
        return ()


class ServeTests(SynchronousTestCase):
    def test_one_answer_per_frame(self):
        frames = b"".join(frame(encode(rows)[0])
                          for rows in ([row(1), row(2)], [], [(1, 2)], [row(3)]))
        out = io.BytesIO()
        sink = _Sink()
        serve(io.BytesIO(frames + FRAME.pack(9) + b"cut"), out, sink)
        self.assertEqual(out.getvalue().splitlines(), [b"ok 2 0", b"ok 0 0", b"ok 0 1", b"ok 1 0"])
        self.assertEqual([r[0] for r in sink.rows], [1.0, 2.0, 3.0])

    def test_errors_are_reported_on_one_line(self):
        out = io.BytesIO()
        serve(io.BytesIO(frame(encode([row(1)])[0]) + FRAME.pack(3) + b"\xff\xff\xff"), out,
              _Sink(fail=True))
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[0], b"error disk full")
        self.assertTrue(lines[1].startswith(b"lost unreadable frame"), lines)

    def test_frames_read_from_the_spool(self):
        path = os.path.join(tempfile.mkdtemp(), "spool")
        spool = Spool(path)
        self.addCleanup(spool.close)
        first, _ = encode([row(1), row(2)])
        second, _ = encode([row(3)])
        refs = [b"@" + REF.pack(*spool.add(n, b)) for n, b in enumerate((first, second), 1)]
        refs.append(b"@" + REF.pack(spool.size, 10))  # beyond its end
        refs.append(b"@" + REF.pack(HEADER_SIZE, 10))  # not a whole record
        refs.append(b"@\x00")  # not a position
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        out = io.BytesIO()
        sink = _Sink()
        serve(io.BytesIO(b"".join(frame(r) for r in refs)), out, sink,
              spool=fd)
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[:2], [b"ok 2 0", b"ok 1 0"])
        self.assertTrue(all(x.startswith(b"lost unreadable frame") for x in lines[2:]), lines)
        self.assertEqual([r[0] for r in sink.rows], [1.0, 2.0, 3.0])
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class _CountingSink(_Sink):
    def __init__(self, fail=False):
        super().__init__(fail)
        self.transactions = []

    def write(self, parts, run=None):
        self.transactions.append(sum(len(rows) for _, rows in parts))
        return super().write(parts, run)


class GroupingTests(SynchronousTestCase):
    """Frames already waiting on the pipe are stored in one transaction."""

    def serve_pipe(self, frames, sink, group_rows=20_000):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        with os.fdopen(w, "wb") as f:
            f.write(frames)
        out = io.BytesIO()
        serve(FdReader(r), out, sink, group_rows=group_rows)
        return out.getvalue().splitlines()

    def test_waiting_frames_share_a_transaction_and_each_gets_its_answer(self):
        frames = b"".join(frame(encode(rows)[0]) for rows in
                          ([row(1), row(2)], [(1, 2)], [row(3)], [row(4)]))
        sink = _CountingSink()
        lines = self.serve_pipe(frames + FRAME.pack(3) + b"\xff\xff\xff", sink)
        self.assertEqual(lines[:4], [b"ok 2 0", b"ok 0 1", b"ok 1 0", b"ok 1 0"])
        self.assertTrue(lines[4].startswith(b"lost unreadable frame"), lines)
        self.assertEqual(sink.transactions, [4])
        self.assertEqual([r[0] for r in sink.rows], [1.0, 2.0, 3.0, 4.0])

    def test_group_size_is_bounded(self):
        frames = b"".join(frame(encode([row(t), row(t + 0.5)])[0]) for t in range(5))
        sink = _CountingSink()
        self.assertEqual(self.serve_pipe(frames, sink, group_rows=4), [b"ok 2 0"] * 5)
        self.assertEqual(sink.transactions, [4, 4, 2])

    def test_a_failed_transaction_fails_every_frame_in_it(self):
        frames = b"".join(frame(encode([row(t)])[0]) for t in range(3))
        lines = self.serve_pipe(frames, _CountingSink(fail=True))
        self.assertEqual(lines, [b"error disk full"] * 3)


class FrameSetTests(SynchronousTestCase):
    def test_same_members_as_a_set_and_kept_as_few_intervals(self):
        rng = random.Random(3)
        frames, ref = spoolfile.FrameSet(), set()
        for _ in range(3000):
            first = rng.randint(1, 400)
            last = first + rng.choice((0, 0, 1, 5))
            frames.add_range(first, last)
            ref.update(range(first, last + 1))
            frames = spoolfile.FrameSet(str(frames))  # as stored and read back
        self.assertEqual([n for n in range(0, 420) if n in frames], sorted(ref))
        self.assertEqual(str(frames), f"1-{max(ref)}")  # no gap left: one interval
        frames = spoolfile.FrameSet("1-3,7,9-10")
        frames.add(5)
        self.assertEqual(str(frames), "1-3,5,7,9-10")
        frames.add(4)
        frames.add(6)
        self.assertEqual(str(frames), "1-7,9-10")


class ExactlyOnceTests(SynchronousTestCase):
    """
    Numbered frames of the spool are stored once: sent again to a new child
    (the old one died after committing), read back from the spool a killed
    daemon left, or recorded before a clear.
    """

    def setUp(self):
        self.conn, self.sink = sqlite_database(self)
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "querylog.spool")
        self.spool = Spool(self.path)
        self.refs = []  # per frame number - 1: its position
        self.fd = os.open(self.path, os.O_RDONLY)
        self.addCleanup(os.close, self.fd)

    def add(self, *stamps):
        body, _ = encode([row(float(t), f"n{t}.example") for t in stamps])
        self.refs.append(frame(b"@" + REF.pack(*self.spool.add(len(self.refs) + 1, body))))

    def serve(self, frames, prefix=""):
        """A new child given these frames: its answer lines."""
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        with os.fdopen(w, "wb") as f:
            f.write(b"".join(frames))
        out = io.BytesIO()
        serve(FdReader(r), out, self.sink, spool=self.fd, prefix=prefix)
        return out.getvalue().splitlines()

    def recover(self, *paths, cleared=float("-inf"), prefix=""):
        body = b"\0".join([(self.path + ".unreadable").encode()] + [p.encode() for p in paths])
        return self.serve([frame(logwriter.RECOVER + logwriter.RECOVER_ARGS.pack(cleared) + body)],
                          prefix)

    def stored(self):
        return sorted(r[0] for r in self.conn.execute("SELECT ts FROM query_log"))

    def test_frames_sent_again_to_a_new_child_are_not_stored_twice(self):
        self.add(1, 2)
        self.add(3)
        self.assertEqual(self.serve(self.refs[:1]), [b"ok 2 0"])
        self.add(4)
        # The child committed frame 1 and died before answering: all sent again.
        self.assertEqual(self.serve(self.refs), [b"ok 2 0", b"ok 1 0", b"ok 1 0"])
        self.assertEqual(self.stored(), [1.0, 2.0, 3.0, 4.0])

    def test_a_killed_daemons_spool_gives_its_frames_not_stored_yet_once(self):
        for t in range(1, 6):
            self.add(t)
        self.assertEqual(self.serve(self.refs[:2] + self.refs[3:4]), [b"ok 1 0"] * 3)
        with open(self.path, "ab") as f:  # the kill tore the last frame
            f.write(spoolfile.record_head(6, b"x" * 100) + b"x" * 40)
        self.spool.close(keep=True)
        left = self.path + ".recover-1"
        os.rename(self.path, left)
        self.spool = Spool(self.path)  # the next start's, another run
        self.addCleanup(self.spool.close)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDONLY)
        lines = self.recover(left)
        self.assertEqual(lines[-1], b"ok 2 0")
        self.assertIn(b"(5 frames, 3 of them already stored); its torn last frame (60 bytes) "
                      b"was dropped", lines[0])
        self.assertEqual(self.stored(), [1.0, 2.0, 3.0, 4.0, 5.0])
        self.assertFalse(os.path.exists(left))
        # What was known of that run's frames is dropped once its file is gone.
        self.assertEqual(self.conn.execute("SELECT COUNT(*) FROM query_log_spool").fetchone(),
                         (0,))
        self.assertEqual(self.recover(left), [b"ok 0 0"])  # a second try: nothing to do

    def test_a_reset_cuts_a_step_at_a_record_boundary_and_a_kill_loses_nothing(self):
        # A large backlog is cut back a step at a time (cutting it at once
        # held DNS for milliseconds), always where a record starts: a cut
        # inside a record would hide every later record from a recovery.
        self.patch(logpipe, "RESET_STEP", 1000)
        for t in range(1, 41):
            self.add(t)
        self.assertEqual(len(self.serve(self.refs)), 40)
        full = self.spool.size
        self.spool.reset()
        self.assertLess(full - self.spool.size, 1000 + 200)
        self.assertGreater(self.spool.size, HEADER_SIZE)
        self.assertEqual(os.fstat(self.fd).st_size, self.spool.size)
        for t in range(41, 44):  # written after the cut, not stored: then a kill
            self.add(t)
        self.spool.close(keep=True)
        left = self.path + ".recover-1"
        os.rename(self.path, left)
        self.spool = Spool(self.path)
        self.addCleanup(self.spool.close)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDONLY)
        lines = self.recover(left)
        self.assertEqual(lines[-1], b"ok 3 0")
        self.assertNotIn(b"torn", b" ".join(lines))
        self.assertEqual(self.stored(), [float(t) for t in range(1, 44)])

    def test_resets_cut_a_stored_backlog_back_to_the_header(self):
        self.patch(logpipe, "RESET_STEP", 1000)
        for t in range(1, 41):
            self.add(t)
        self.serve(self.refs)
        sizes = [self.spool.size]
        while self.spool.size > HEADER_SIZE:
            self.spool.reset()
            sizes.append(self.spool.size)
            self.assertLess(sizes[-1], sizes[-2])
        self.assertGreater(len(sizes), 3)
        self.spool.reset()  # nothing left: nothing to do
        self.assertEqual(os.fstat(self.fd).st_size, HEADER_SIZE)
        self.add(41)  # the next record goes right after the header
        self.assertEqual(self.serve(self.refs[-1:]), [b"ok 1 0"])

    def test_a_recovery_done_after_a_clear_stores_no_row_recorded_before_it(self):
        # DELETE /api/query-logs came while the recovery was failing (the
        # database): sent again after the clear, it stores only later rows.
        self.add(1, 2)
        self.add(3, 8)
        self.spool.close(keep=True)
        left = self.path + ".recover-1"
        os.rename(self.path, left)
        self.assertEqual(self.recover(left, cleared=3.5)[-1], b"ok 1 0")
        self.assertEqual(self.stored(), [8.0])

    def test_only_this_data_directorys_old_runs_are_forgotten(self):
        # Another daemon on the same PostgreSQL database has its own runs.
        mine = logwriter.owner(self.path)
        self.assertEqual(mine, logwriter.owner(self.path + ".recover-1"))
        self.assertNotEqual(mine, logwriter.owner(os.path.join(tempfile.mkdtemp(), "x")))
        for run in (mine + "old", "0123456789abcdef:theirs"):
            self.conn.execute("INSERT INTO query_log_spool VALUES (?, '1-9')", (run,))
        self.add(1)
        self.assertEqual(self.serve(self.refs, prefix=mine), [b"ok 1 0"])
        self.assertEqual(self.recover(prefix=mine), [b"ok 0 0"])
        self.assertEqual(sorted(r[0] for r in self.conn.execute("SELECT run FROM query_log_spool")),
                         sorted(["0123456789abcdef:theirs", mine + self.spool.run]))

    def test_a_file_that_is_not_a_spool_is_moved_aside(self):
        for name, data in [("old", marshal.dumps([row(1.0)])),  # the format before numbers
                           ("garbage", os.urandom(3000))]:
            path = os.path.join(self.dir, name)
            with open(path, "wb") as f:
                f.write(data)
            lines = self.recover(path)
            self.assertEqual(lines[-1], b"ok 0 0")
            self.assertIn(b"is not a query-log spool that can be read", lines[0])
            self.assertIn(b"moved to " + self.path.encode() + b".unreadable", lines[0])
            self.assertFalse(os.path.exists(path))
            with open(self.path + ".unreadable", "rb") as f:
                self.assertEqual(f.read(), data)
        huge = os.path.join(self.dir, "huge")
        with open(huge, "wb") as f:
            f.write(spoolfile.new_header()[0])
            f.truncate(spoolfile.LIMIT + 4096)  # sparse: not read, moved aside
        lines = self.recover(huge)
        self.assertIn(b"larger than a spool can be", lines[0])
        self.assertEqual(os.stat(self.path + ".unreadable").st_size, spoolfile.LIMIT + 4096)
        self.assertEqual(self.stored(), [])

    def test_frames_recorded_before_a_clear_are_never_stored_after_it(self):
        self.add(1)
        self.add(2)
        self.assertEqual(self.serve(self.refs[:1]), [b"ok 1 0"])
        self.add(9)  # recorded after the clear
        clear = frame(logwriter.CLEAR + logwriter.CLEAR_ARGS.pack(2, 5.0))
        # Frame 2 failed before the clear and is sent again after it.
        self.assertEqual(self.serve([clear, self.refs[1], self.refs[2]]),
                         [b"ok 0 0", b"ok 1 0", b"ok 1 0"])
        self.assertEqual(self.stored(), [9.0])


def later(seconds):
    return deferLater(reactor, seconds, lambda: None)


class WriterContract:
    """A real writer process against a real database (mixed into TestCase)."""

    postgres = False

    async def setUp(self):
        self.store = await open_store(self, postgres=self.postgres)
        self.spool = os.path.join(tempfile.mkdtemp(), "querylog.spool")
        self.writer = self.make_writer()

    def make_writer(self, url=None, **kw):
        writer = QueryLogWriter(reactor, url or self.store_url(), spool=self.spool,
                                retry_delay=0.05, **kw)
        self.addCleanup(writer.stop)
        return writer

    def store_url(self):
        if self.postgres:
            return self.store.db._dsn
        return "sqlite://" + self.store.db._path

    async def test_rows_stored_in_order_and_the_spool_emptied(self):
        result = await self.writer.append([row(float(t), f"n{t}.example") for t in range(2500)]
                                          + [(None,) * 10])
        self.assertEqual(result, (2500, 1))
        self.assertEqual(await self.store.count_query_logs(), 2500)
        newest = await self.store.query_logs(QueryLogFilter(limit=2))
        self.assertEqual([(r["qname"], r["ts"], r["client_name"]) for r in newest],
                         [("n2499.example", 2499.0, "tv"), ("n2498.example", 2498.0, "tv")])
        st = os.stat(self.spool)
        self.assertEqual((st.st_size, st.st_mode & 0o777, self.writer.pending_rows),
                         (HEADER_SIZE, 0o600, 0))
        # DNS first: the writer runs only when the core is otherwise idle.
        self.assertEqual(os.sched_getscheduler(self.writer.pid), os.SCHED_IDLE)
        self.assertEqual(os.getpriority(os.PRIO_PROCESS, self.writer.pid), 19)

    async def test_rows_the_database_refuses_are_dropped_and_counted(self):
        result = await self.writer.append([row(1.0)] + unstorable(1.5) + [row(2.0)])
        self.assertEqual(result, (2, 2))
        rows = await self.store.query_logs(QueryLogFilter())
        self.assertEqual([r["ts"] for r in rows], [2.0, 1.0])

    async def test_a_stopped_child_loses_nothing_the_backlog_waits_in_the_spool(self):
        await self.writer.append([row(0.0)])  # the child is running
        os.kill(self.writer.pid, signal.SIGSTOP)  # e.g. a burst: it gets no CPU
        self.addCleanup(self._cont, self.writer.pid)
        done = [self.writer.append([row(float(t), f"b{t}.example") for t in range(k, k + 1000)])
                for k in range(1, 20001, 1000)]
        self.assertEqual(self.writer.pending_rows, 20000)
        self.assertGreater(os.stat(self.spool).st_size, 20000 * 20)  # on disk, not in memory
        await self.writer.settled(0.2)  # readers do not wait for the whole backlog
        self.assertEqual(await self.store.count_query_logs(), 1)
        os.kill(self.writer.pid, signal.SIGCONT)
        self.assertEqual([await d for d in done], [(1000, 0)] * 20)
        await self.writer.settled(30)
        self.assertEqual(await self.store.count_query_logs(), 20001)
        self.assertEqual(os.stat(self.spool).st_size, HEADER_SIZE)

    def _cont(self, pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass

    async def test_a_full_spool_refuses_rows(self):
        writer = self.make_writer(spool_limit=4000)
        await writer.append([row(0.0)])
        os.kill(writer.pid, signal.SIGSTOP)
        self.addCleanup(self._cont, writer.pid)
        taken = []
        with self.assertRaises(WriterError) as e:
            for t in range(1, 1000):
                taken.append(writer.append([row(float(t))]))
        self.assertIn("spool is full", str(e.exception))
        self.assertLess(len(taken), 999)
        os.kill(writer.pid, signal.SIGCONT)
        for d in taken:
            await d
        self.assertEqual(await self.store.count_query_logs(), 1 + len(taken))
        self.assertEqual(await writer.append([row(5000.0)]), (1, 0))  # room again

    async def test_a_killed_child_is_restarted_and_its_frames_sent_again(self):
        self.assertEqual(await self.writer.append([row(1.0)]), (1, 0))
        pid = self.writer.pid
        os.kill(pid, signal.SIGKILL)
        again = self.writer.append([row(2.0)])  # written to a dying child
        self.assertEqual(await again, (1, 0))
        self.assertEqual(await self.writer.append([row(3.0)]), (1, 0))
        self.assertNotEqual(self.writer.pid, pid)
        self.assertEqual(sorted(r["ts"] for r in await self.store.query_logs(QueryLogFilter())),
                         [1.0, 2.0, 3.0])

    async def test_a_database_error_is_retried_until_stored_once(self):
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE query_log RENAME TO gone"))
        d = self.writer.append([row(1.0)])
        while self.writer.failures < 2:
            await later(0.05)
        self.assertNoResult(d)
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE gone RENAME TO query_log"))
        self.assertEqual(await d, (1, 0))
        self.assertEqual([r["ts"] for r in await self.store.query_logs(QueryLogFilter())], [1.0])

    async def test_service_keeps_rows_until_stored(self):
        log = QueryLog()
        clock = Clock()
        service = QueryLogService(log, self.store, clock, writer=self.writer,
                                  settle_timeout=0.5)
        for t in range(30):
            log.record(float(t), "10.0.0.1", "", wire("x.example"), 1, "forwarded", "",
                       "127.0.0.1:53", 0, 1.5)
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE query_log RENAME TO gone"))
        service.flush()
        while not log.failures:
            await later(0.05)
        self.assertEqual((len(log.buffer), log.waiting(), log.written), (0, 30, 0))
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE gone RENAME TO query_log"))
        log.record(None, None, None, None, None, None, None, None, None, None)
        await service.flush()
        while log.waiting():
            await later(0.05)
        self.assertEqual((log.written, log.dropped), (30, 1))
        rows = await self.store.query_logs(QueryLogFilter(limit=100))
        self.assertEqual([r["ts"] for r in rows], [float(t) for t in range(29, -1, -1)])
        self.assertEqual(rows[0]["qname"], "x.example")

    async def test_stop_ends_the_child_and_removes_the_spool(self):
        await self.writer.append([row(1.0)])
        pid = self.writer.pid
        await self.writer.stop()
        self.assertIsNone(self.writer.pid)
        with self.assertRaises(OSError):
            os.kill(pid, 0)
        self.assertFalse(os.path.exists(self.spool))
        with self.assertRaises(WriterError):
            self.writer.append([row(2.0)])


    async def test_rows_not_stored_at_stop_are_stored_by_the_next_start(self):
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE query_log RENAME TO gone"))
        d = self.writer.append([row(1.0), row(2.0)])
        d.addErrback(lambda f: f.trap(WriterError))
        while not self.writer.failures:
            await later(0.05)
        await self.writer.stop()  # the database still fails
        self.assertTrue(os.path.exists(self.spool))
        await self.store.db.run(lambda tx: tx.execute("ALTER TABLE gone RENAME TO query_log"))
        writer = self.make_writer()
        writer.start()
        await writer.settled(30)
        self.assertEqual(sorted(r["ts"] for r in await self.store.query_logs(QueryLogFilter())),
                         [1.0, 2.0])
        self.assertEqual(os.listdir(os.path.dirname(self.spool)), ["querylog.spool"])

    async def test_rows_kept_at_stop_without_the_store_are_stored_by_the_next_start(self):
        self.writer.keep([row(1.0)])
        await self.writer.stop()
        self.assertIsNone(self.writer.pid)  # the database was not touched
        self.assertEqual(await self.store.count_query_logs(), 0)
        writer = self.make_writer()
        writer.start()
        await writer.settled(30)
        self.assertEqual([r["ts"] for r in await self.store.query_logs(QueryLogFilter())], [1.0])

    async def test_a_clear_is_not_undone_by_rows_on_their_way(self):
        # Rows recorded before DELETE /api/query-logs and still waiting for
        # the writer (a backlog longer than readers wait for) are not
        # stored after the clear.
        log = QueryLog()
        clock = Clock()
        clock.advance(1000)
        service = QueryLogService(log, self.store, clock, writer=self.writer, settle_timeout=0.2)
        await self.writer.append([row(1.0)])
        pid = self.writer.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(self._cont, pid)
        for t in range(2, 12):
            log.record(*row(float(t)))
        await service.flush(wait=False)  # with the writer, waiting
        log.record(*row(12.0))  # still buffered
        d = service.clear()
        clock.advance(1)  # readers wait no longer
        os.kill(pid, signal.SIGCONT)
        await d
        log.record(*row(2000.0))  # after the clear
        await service.flush()
        await self.writer.settled(30)
        self.assertEqual([r["ts"] for r in await self.store.query_logs(QueryLogFilter())],
                         [2000.0])


class SqliteWriterTests(WriterContract, TestCase):
    async def test_a_long_database_failure_warns_once_a_minute_not_per_frame(self):
        logged = LogCapture(self)
        clock = Clock()
        writer = self.make_writer(clock=clock)
        await self.store.db.run(lambda tx: tx.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON query_log BEGIN SELECT RAISE(ABORT, 'no'); END"))
        done = [writer.append([row(float(t))]) for t in range(20)]
        while writer.failures < 20:
            await later(0.05)

        def warnings():
            return [line for line in logged.lines if "failed" in line]

        self.assertEqual(len(warnings()), 1)
        clock.advance(60)  # all sent again, and fail again
        while writer.failures < 40:
            await later(0.05)
        self.assertEqual(len(warnings()), 2)
        self.assertIn("19 more frames failed since the last warning", warnings()[1])
        await self.store.db.run(lambda tx: tx.execute("DROP TRIGGER refuse"))
        clock.advance(writer.retry_delay)
        self.assertEqual([await d for d in done], [(1, 0)] * 20)
        self.assertIn("storing rows works again", logged.text())

    async def test_a_recovery_that_failed_until_after_a_clear_does_not_undo_it(self):
        left = Spool(self.spool)  # a killed daemon's, with two rows
        left.add(1, encode([row(1.0), row(2.0)])[0])
        left.close(keep=True)
        # Rows cannot be stored (the recovery fails), deleting works (the clear).
        await self.store.db.run(lambda tx: tx.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON query_log BEGIN SELECT RAISE(ABORT, 'no'); END"))
        self.writer.start()
        while not self.writer.failures:
            await later(0.05)
        await self.writer.clear(5.0)
        await self.store.db.run(lambda tx: tx.execute("DROP TRIGGER refuse"))
        while [f for f in os.listdir(os.path.dirname(self.spool)) if ".recover-" in f]:
            await later(0.05)
        self.assertEqual(await self.store.count_query_logs(), 0)

    async def test_a_child_that_keeps_dying_is_started_less_and_less_often(self):
        starts = os.path.join(tempfile.mkdtemp(), "starts")
        clock = Clock()
        writer = QueryLogWriter(reactor, self.store_url(), spool=self.spool, clock=clock,
                                argv=[sys.executable, "-c",
                                      f"open({starts!r}, 'a').write('x')"])
        self.addCleanup(writer.stop)
        d = writer.append([row(1.0)])
        d.addErrback(lambda f: f.trap(WriterError))

        async def started():
            while writer.pid is not None:  # its end, seen by the reactor
                await later(0.01)
            with open(starts) as f:
                return len(f.read())

        self.assertEqual(await started(), 1)
        for delay in (1, 2, 4, 8):
            clock.advance(delay - 0.5)
            self.assertEqual(await started(), {1: 1, 2: 2, 4: 3, 8: 4}[delay])
            clock.advance(0.5)
            self.assertEqual(await started(), {1: 2, 2: 3, 4: 4, 8: 5}[delay])

    async def test_unusable_database_retries_until_stopped(self):
        writer = self.make_writer(url="sqlite://" + os.path.join(
            tempfile.mkdtemp(), "missing", "dir", "x.db"))
        d = writer.append([row(1.0)])
        while writer.failures < 2:
            await later(0.05)
        await writer.stop()
        with self.assertRaises(WriterError):
            await d

    async def test_the_watchdog_counts_from_the_first_unanswered_frame(self):
        # A frame sent to an idle child just before its timeout would have
        # run out (counted from its last answer) gets the full timeout.
        clock = Clock()
        writer = self.make_writer(timeout=1.0, clock=clock)
        self.assertEqual(await writer.append([row(1.0)]), (1, 0))
        pid = writer.pid
        clock.advance(0.9)
        os.kill(pid, signal.SIGSTOP)  # slow to answer the next frame, not stuck
        self.addCleanup(self._cont, pid)
        while _progress(pid)[0] != "T":  # the kernel has stopped it
            await later(0.01)
        d = writer.append([row(2.0)])
        clock.advance(0.5)  # 1.4 s after the last answer, 0.5 s after the frame
        self.assertEqual(writer.pid, pid)
        os.kill(pid, signal.SIGCONT)
        self.assertEqual(await d, (1, 0))
        self.assertEqual(writer.pid, pid)

    async def test_an_answer_restarts_the_watchdog_count(self):
        # The child answers the first of two frames 0.8 s in, then never
        # again: it is looked at 1.0 s after that answer, not before.
        script = ("import struct, sys\n"
                  "r = sys.stdin.buffer\n"
                  "def frame():\n"
                  "    head = r.read(4)\n"
                  "    return r.read(struct.unpack('!I', head)[0]) if len(head) == 4 else None\n"
                  "frame(); frame()\n"  # the database URL and the spool path
                  "frame(); sys.stdout.write('ok 0 0\\n')\n"  # recovery: nothing to do
                  "frame(); sys.stdout.write('ok 1 0\\n'); sys.stdout.flush()\n"
                  "while frame() is not None:\n"
                  "    pass\n")  # reads on, never answers: asleep, using no CPU
        clock = Clock()
        writer = self.make_writer(timeout=1.0, clock=clock,
                                  argv=[sys.executable, "-c", script])
        first = writer.append([row(1.0)])
        second = writer.append([row(2.0)])
        second.addErrback(lambda f: f.trap(WriterError))  # never stored: the writer stops
        pid = writer.pid
        clock.advance(0.8)
        self.assertEqual(await first, (1, 0))
        while _progress(pid)[0] != "S":  # asleep in read(), using no more CPU
            await later(0.01)
        clock.advance(0.2)  # 1.0 s after the frames were sent, 0.2 s after the answer
        self.assertEqual(writer.pid, pid)
        clock.advance(0.79)
        self.assertEqual(writer.pid, pid)
        clock.advance(0.01)  # 1.0 s without an answer: killed
        for _ in range(500):
            if writer.pid != pid:
                break
            await later(0.01)
        self.assertNotEqual(writer.pid, pid)

    async def test_a_stuck_child_is_killed_and_its_frames_stored_by_the_next(self):
        clock = Clock()
        writer = self.make_writer(timeout=1.0, clock=clock)
        await writer.append([row(1.0)])
        pid = writer.pid
        os.kill(pid, signal.SIGSTOP)  # neither running nor waiting for the CPU
        self.addCleanup(self._cont, pid)
        while _progress(pid)[0] != "T":  # the kernel has stopped it
            await later(0.01)
        d = writer.append([row(2.0)])
        clock.advance(1.0)  # the watchdog: killed
        while writer.pid is not None:  # the real child's end, seen by the reactor
            await later(0.01)
        clock.advance(writer.retry_delay)  # sent again, to a new child
        self.assertEqual(await d, (1, 0))
        self.assertNotEqual(writer.pid, pid)
        self.assertEqual(await self.store.count_query_logs(), 2)

    async def test_unwritable_spool_refuses_rows(self):
        writer = QueryLogWriter(reactor, self.store_url(),
                                spool=os.path.join(tempfile.mkdtemp(), "no", "spool"))
        self.addCleanup(writer.stop)
        with self.assertRaises(WriterError) as e:
            writer.append([row(1.0)])
        self.assertIn("cannot create the query-log spool", str(e.exception))


class PostgresWriterTests(WriterContract, TestCase):
    postgres = True


class _NotReady:
    available = False

    def subscribe(self, observer):
        return lambda: None


class _Ready(_NotReady):
    available = True


class _Writer:
    pending_rows = 0

    def __init__(self):
        self.frames = []
        self.stopped = False
        self.cleared = Deferred()

    def clear(self, before):
        return self.cleared

    def append(self, rows):
        raise AssertionError("must not be called: the store is not ready")

    def keep(self, rows):
        if self.stopped:
            raise WriterError("stopped")
        self.frames.append(rows)

    def settled(self, timeout):
        return succeed(None)

    def stop(self):
        self.stopped = True
        return succeed(None)


class StartupTests(SynchronousTestCase):
    def test_nothing_written_before_the_store_is_ready(self):
        log = QueryLog()
        log.record(1.0, "10.0.0.1", "", b"\x00", 1, "forwarded", "", "", 0, 1.0)
        writer = _Writer()
        service = QueryLogService(log, _NotReady(), Clock(), writer=writer)
        self.successResultOf(service.flush())
        self.assertEqual((len(log.buffer), writer.frames), (1, []))

    def test_no_clear_through_the_writer_before_the_store_is_ready(self):
        # The writer must not touch a database that is not migrated (or is
        # newer than this Sentinel): the API answers that it is unavailable.
        log = QueryLog()
        log.record(1.0, "10.0.0.1", "", b"\x00", 1, "forwarded", "", "", 0, 1.0)
        service = QueryLogService(log, _NotReady(), Clock(), writer=_Writer())
        self.failureResultOf(ensureDeferred(service.clear()), StoreUnavailable)
        self.assertEqual(len(log.buffer), 1)

    def test_a_clear_the_database_does_not_take_answers_unavailable_and_stays_queued(self):
        # DELETE /api/query-logs while the database is locked: 503 after
        # clear_timeout, not a request that hangs; the writer still does it.
        clock = Clock()
        writer = _Writer()
        service = QueryLogService(QueryLog(), _Ready(), clock, writer=writer, clear_timeout=10)
        d = ensureDeferred(service.clear())
        clock.advance(9.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.assertIn("stays queued", str(self.failureResultOf(d, StoreUnavailable).value))
        writer.cleared.callback(None)  # done later: nothing else happens
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_clear_the_database_takes_in_time_succeeds(self):
        clock = Clock()
        writer = _Writer()
        service = QueryLogService(QueryLog(), _Ready(), clock, writer=writer)
        d = ensureDeferred(service.clear())
        clock.advance(3)
        writer.cleared.callback(None)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_rows_buffered_at_stop_go_to_the_spool_even_with_the_store_down(self):
        # The spool outlives the daemon: the next start stores them.  The
        # writer does not touch the database meanwhile.
        log = QueryLog()
        log.record(1.0, "10.0.0.1", "", b"\x00", 1, "forwarded", "", "", 0, 1.0)
        writer = _Writer()
        service = QueryLogService(log, _NotReady(), Clock(), writer=writer)
        self.successResultOf(service.stopService())
        self.assertEqual((len(log.buffer), len(writer.frames), writer.stopped), (0, 1, True))


class PostgresSinkTimeoutTests(SynchronousTestCase):
    """The writer child is blocking: a lock held elsewhere (e.g. by a
    transaction a silent writer left open) must fail the frame, which is
    sent again later, not block the child until the watchdog kills it
    again and again."""

    from tests.support import pg as _pg

    if _pg.skip_reason():
        skip = _pg.skip_reason()

    def test_a_lock_held_elsewhere_fails_the_frame_and_it_is_stored_once_later(self):
        import psycopg2

        from sentinel.store.logwriter import PostgresSink
        from tests.support import pg

        url, drop = pg.create_database()
        self.addCleanup(drop)
        admin = psycopg2.connect(url)
        self.addCleanup(admin.close)
        cur = admin.cursor()
        for _, _, statements in migrations.available_migrations("postgres"):
            for statement in statements:
                cur.execute(statement)
        admin.commit()
        sink = PostgresSink(url)
        sink.timeout = 0.4  # the server cancels a statement after 0.2 s
        self.addCleanup(lambda: sink.conn and sink.conn.close())
        rows, _ = normalise([row(1.0), row(2.0)], Names())
        run = "ab" * 16
        # (Ended by the server after 5 s in any case: without the sink's own
        # timeouts this test fails instead of hanging.)
        cur.execute("SET idle_in_transaction_session_timeout = 5000")
        cur.execute("LOCK TABLE query_log_spool IN ACCESS EXCLUSIVE MODE")
        self.assertRaises(psycopg2.OperationalError, sink.write, [(1, rows)], run)
        admin.rollback()
        self.assertEqual(set(sink.write([(1, rows)], run)), set())
        self.assertEqual(set(sink.write([(1, rows)], run)), {1})  # sent again: not stored again
        cur.execute("SELECT count(*) FROM query_log")
        self.assertEqual(cur.fetchone()[0], 2)
        admin.rollback()

    def test_a_connection_the_server_closed_while_idle_is_made_again_at_once(self):
        """The frame after a PostgreSQL restart (or failover) is stored,
        not failed and kept waiting for the retry (a queryLog problem in
        /api/health meanwhile)."""
        import psycopg2

        from sentinel.store.logwriter import PostgresSink
        from tests.support import pg

        url, drop = pg.create_database()
        self.addCleanup(drop)
        admin = psycopg2.connect(url)
        admin.autocommit = True
        self.addCleanup(admin.close)
        cur = admin.cursor()
        for _, _, statements in migrations.available_migrations("postgres"):
            for statement in statements:
                cur.execute(statement)
        sink = PostgresSink(url)
        self.addCleanup(lambda: sink.conn and sink.conn.close())
        run = "cd" * 16
        rows, _ = normalise([row(1.0)], Names())
        sink.write([(1, rows)], run)
        cur.execute("SELECT pg_terminate_backend(%s)", (sink.conn.get_backend_pid(),))
        rows, _ = normalise([row(2.0)], Names())
        self.assertEqual(set(sink.write([(2, rows)], run)), set())
        cur.execute("SELECT count(*) FROM query_log")
        self.assertEqual(cur.fetchone()[0], 2)
