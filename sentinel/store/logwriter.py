"""
The query-log writer: a child process that stores query-log rows, so the
DNS process spends neither its time nor its GIL on SQL.  (A store thread
in the DNS process took the GIL back and forth with the reactor for every
row: ~25% of the DNS throughput and most of its latency tail.)

    python -m sentinel.store.logwriter

Frames on stdin: a 4-byte big-endian length, then the bytes.  The first
frame is the database URL (not on the command line: it may hold a
password), the second the spool file's path (may be empty: no spool);
every other one is ``marshal`` of a list of rows (tuples in
``QUERY_LOG_COLUMNS`` order; the name may still be in wire format, it is
decoded here), or ``@`` and the position (offset, length: L{REF}) of a
record of the spool file (L{sentinel.store.spoolfile}: a numbered frame),
or a command: ``R`` (recover spool files left by a daemon that did not
stop cleanly, L{recover}) or ``C`` (``DELETE /api/query-logs``,
L{_Sink.clear}).  For every frame, one line on stdout, in order (lines
``note MESSAGE`` before it are for the daemon's log): ``ok STORED BAD``
(BAD: malformed rows that were skipped, L{normalise}, and rows the
database refused, L{storable}), ``error MESSAGE`` (the database failed
and nothing of the frame was stored: the parent sends it again later) or
``lost MESSAGE`` (the frame cannot be read: sending it again would not
help, its rows are lost).  A numbered frame is stored once: its number
goes into the run's frame set in the transaction that stores it, and a
frame already in the set is answered ``ok`` without storing it again.
The parent sends small frames (cheap to encode between two DNS
packets); the frames already waiting on stdin are stored together, in one
transaction of at most ``GROUP_ROWS`` rows, and answered once it is
committed.  The process runs at the lowest priority (nice 19,
SCHED_IDLE: DNS first, the rows wait in the spool meanwhile) and exits
when stdin closes, or when the daemon dies (Linux).

L{normalise} is also what the in-process path uses (``QueryLog.take``), so
both store exactly the same values.
"""

import gc
import hashlib
import marshal
import os
import select
import socket
import struct
import sys
from itertools import chain

from sentinel.safefile import sync_directory
from sentinel.store.records import QUERY_LOG_COLUMNS
from sentinel.store.spoolfile import (
    HEADER_SIZE, LIMIT as SPOOL_LIMIT, FrameSet, Scan, parse_record, run_of,
)

FRAME = struct.Struct("!I")
REF = struct.Struct("!QI")  # a body's offset and length in the spool file
MAX_FRAME = 256 * 1024 * 1024
# DNS first: at nice 19 (and SCHED_IDLE: L{lower_priority}) the writer gets
# almost none of a core the DNS process wants.  Rows it has not stored yet
# wait in the spool file, not in memory, so being slow during a burst loses
# nothing (docs/PERFORMANCE.md).
NICE = 19
_NAMES_MAX = 100_000
GROUP_ROWS = 20_000  # rows per transaction at most (frames waiting are grouped)
# Bytes a label shows as they are (wire_to_text escapes the others).
_PLAIN = bytes(range(0x21, 0x7F)).replace(b".", b"").replace(b"\\", b"")
_A = ord("a")
_SHAPE = bytes.maketrans(_PLAIN, b"a" * len(_PLAIN))  # a name's shape (text_name)
_OTHER = bytes(b for b in range(256) if b not in _PLAIN)
_DOTS = bytes.maketrans(_OTHER, b"." * len(_OTHER))
_SHAPES = {}  # shape -> needs no escapes (names of a few thousand shapes are most names)
_SHAPES_MAX = 10_000

INSERT = "INSERT INTO query_log (%s) VALUES (%s)" % (
    ", ".join(QUERY_LOG_COLUMNS), ", ".join("?" for _ in QUERY_LOG_COLUMNS))
# SQLite: rows per INSERT statement (executemany pays ~2.5 µs per statement
# on top of SQLite's own work; 50 rows are 500 parameters, under the 999
# SQLite allowed before 3.32).
STATEMENT_ROWS = 50
_STATEMENT_VALUES = STATEMENT_ROWS * len(QUERY_LOG_COLUMNS)
INSERT_MANY = INSERT + (", (%s)" % ", ".join("?" for _ in QUERY_LOG_COLUMNS)) * (
    STATEMENT_ROWS - 1)


def text_name(qname):
    """A wire-format name as text, exactly like L{sentinel.filtering.names.wire_to_text}."""
    if type(qname) is bytes:
        shapes = _SHAPES
        shape = qname.translate(_SHAPE)
        plain = shapes.get(shape)
        if plain is None:
            if len(shapes) >= _SHAPES_MAX:
                shapes.clear()
            plain = shapes[shape] = _plain_shape(shape)
        if plain:  # the bytes that are not label text are its length bytes: dots
            return qname.translate(_DOTS)[1:-1].decode("ascii")
    return _text_name(qname)


def _plain_shape(shape):
    """
    Is this the shape of a name that needs no escapes?  ``shape`` is the
    name with every byte that a label shows unescaped (``_PLAIN``)
    replaced by ``a``, itself such a byte: so the bytes left as they were
    are the others, and an ``a`` where a length byte should be was a
    label byte.  Yes if it is a name of at least one label, every label
    all ``a``, with its terminating zero as the last byte: then the
    name's bytes outside ``_PLAIN`` are exactly its length bytes and that
    zero, and the text is the name with them made dots (L{text_name}).
    """
    i, n = 0, len(shape)
    labels = 0
    while i < n:
        length = shape[i]
        if length == 0:
            return labels > 0 and i == n - 1
        label = shape[i + 1:i + 1 + length]
        if length == _A or len(label) != length or label.strip(b"a"):
            return False
        labels += 1
        i += 1 + length
    return False


def _text_name(qname):
    """L{text_name} label by label: any name (escapes need the general decoder)."""
    if not isinstance(qname, (bytes, bytearray)):
        return str(qname)
    labels = []
    i, n = 0, len(qname)
    while i < n:
        length = qname[i]
        if length == 0:
            break
        label = qname[i + 1:i + 1 + length]
        if label.translate(None, _PLAIN):  # escapes needed: the general decoder
            from sentinel.filtering.names import wire_to_text

            return wire_to_text(bytes(qname))
        labels.append(label)
        i += 1 + length
    return b".".join(labels).decode("ascii") if labels else "."


class Names(dict):
    """A bounded cache of decoded names (names repeat a lot)."""

    def text(self, qname):
        text = self.get(qname)
        if text is None:
            if len(self) >= _NAMES_MAX:
                self.clear()
            text = self[qname] = text_name(qname)
        return text


def normalise(rows, names):
    """
    (rows with the types the store expects, number of malformed rows
    skipped).  Rows come from our own DNS code; a malformed one (a bug) is
    dropped and counted rather than allowed to fail the whole batch.
    """
    out = []
    append = out.append
    bad = 0
    known = names.get  # most names are in the cache: no call of text() for them
    text = names.text
    for row in rows:
        try:
            ts, ip, name, qname, qtype, decision, reason, upstream, rcode, duration = row
            append((float(ts), str(ip), str(name or ""), known(qname) or text(qname),
                    int(qtype), str(decision), str(reason or ""), str(upstream or ""),
                    None if rcode is None else int(rcode),
                    None if duration is None else float(duration)))
        except (TypeError, ValueError):
            bad += 1
    return out, bad


def frame(body):
    """``body`` with its length prefix: one frame on the writer's stdin."""
    return FRAME.pack(len(body)) + body


def encode(rows):
    """
    The body of one frame for the writer: (bytes, number of rows that
    could not be encoded and were left out).
    """
    try:
        return marshal.dumps(rows), 0
    except ValueError:  # an object marshal cannot carry: a malformed row
        good = []
        for row in rows:
            try:
                marshal.dumps(row)
            except ValueError:
                continue
            good.append(row)
        return marshal.dumps(good), len(rows) - len(good)


# -- the child -------------------------------------------------------------


class _Sink:
    """
    What both sinks share: one transaction per call, which stores the
    rows of numbered frames and records their numbers in the run's
    L{FrameSet} (``query_log_spool``), reading it first: a frame already
    in it is not stored again (exactly once, L{sentinel.store.spoolfile}).
    A subclass gives ``_transaction(fn)``, ``_execute(sql, params)`` (rows,
    for a query) and ``_insert(rows)``.
    """

    def write(self, parts, run=None):
        """
        parts: [(frame number or 0, rows as L{normalise} returns them)], in
        one transaction.  Returns the numbers of the frames that were
        already stored (their rows are not stored again).
        """
        if not any(rows for _, rows in parts):
            return ()
        return self._transaction(lambda: self._store(parts, run))

    def _store(self, parts, run):
        skipped = ()
        done = None
        if run is not None and any(number for number, _ in parts):
            done = self._done(run)
            skipped = {number for number, _ in parts if number and number in done}
        if skipped:
            parts = [part for part in parts if part[0] not in skipped]
        rows = parts[0][1] if len(parts) == 1 else list(chain.from_iterable(
            rows for _, rows in parts))
        if rows:
            self._insert(rows)
        if done is not None:
            for number, _ in parts:
                if number:
                    done.add(number)
            self._save(run, done)
        return skipped

    def clear(self, run, upto, before):
        """
        ``DELETE /api/query-logs``: rows of queries up to ``before`` go, and
        the frames of this run numbered up to ``upto`` (recorded before the
        clear) count as stored: sent again or read back later, they are not
        stored.  One transaction.
        """
        def clear():
            self._execute("DELETE FROM query_log WHERE ts <= ?", (before,))
            if run is not None and upto:
                done = self._done(run)
                done.add_range(1, upto)
                self._save(run, done)

        self._transaction(clear)

    def forget(self, keep, owner=""):
        """
        Drops what is known of the frames of every run of ``owner`` (this
        data directory) but ``keep``: their files are gone.
        """
        self._transaction(lambda: self._execute(
            "DELETE FROM query_log_spool WHERE run LIKE ? AND run <> ?",
            (owner + "%", keep or "")))

    def _done(self, run):
        found = self._execute("SELECT done FROM query_log_spool WHERE run = ?" + self.LOCK, (run,))
        return FrameSet(found[0][0] if found else "")

    def _save(self, run, done):
        self._execute("INSERT INTO query_log_spool (run, done) VALUES (?, ?) "
                      "ON CONFLICT (run) DO UPDATE SET done = excluded.done", (run, str(done)))


class SqliteSink(_Sink):
    """
    Same settings as the store's own connections (WAL, synchronous=FULL).
    ``BEGIN IMMEDIATE``: the frame set is read under the write lock.
    """

    LOCK = ""

    def __init__(self, path):
        self.path = path
        self.conn = None

    def _transaction(self, fn):
        import sqlite3

        if self.conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self.conn = conn
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _execute(self, sql, params):
        return self.conn.execute(sql, params).fetchall()

    def _insert(self, rows):
        conn = self.conn
        # STATEMENT_ROWS rows per statement, in order (so are the ids).
        whole = len(rows) - len(rows) % STATEMENT_ROWS
        if whole:
            values = chain.from_iterable(rows[:whole] if whole < len(rows) else rows)
            conn.executemany(INSERT_MANY, zip(*[values] * _STATEMENT_VALUES))
        if whole < len(rows):
            conn.executemany(INSERT, rows[whole:])


class PostgresSink(_Sink):
    LOCK = " FOR UPDATE"  # two writers (one left by a killed daemon) queue here
    # Statements are cancelled by the server after half of it (a lock held
    # elsewhere); a transaction left by a writer that went silent is ended
    # after twice it (its lock on the run's row is released): pgsession.
    timeout = 30.0

    def __init__(self, url):
        self.url = url
        self.conn = None
        self.cursor = None

    def _transaction(self, fn):
        import psycopg2

        from sentinel.store.pgsession import session_settings

        while True:
            fresh = self.conn is None or self.conn.closed
            if fresh:
                self.conn = psycopg2.connect(self.url, connect_timeout=10,
                                             **session_settings(self.url, self.timeout))
            try:
                with self.conn, self.conn.cursor() as cursor:
                    self.cursor = cursor
                    return fn()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                self.conn.close()  # reconnect for the next frame
                # A connection that sat idle may have been closed by the
                # server (a restart, a failover, the backend killed): one
                # more try at once on a new one (a frame is stored once
                # whatever happens).  A cancelled statement is not retried.
                if fresh or isinstance(e, psycopg2.extensions.QueryCanceledError):
                    raise
            finally:
                self.cursor = None

    def _execute(self, sql, params):
        self.cursor.execute(sql.replace("?", "%s"), params)
        return self.cursor.fetchall() if self.cursor.description else []

    def _insert(self, rows):
        from psycopg2.extras import execute_values

        execute_values(self.cursor, "INSERT INTO query_log (%s) VALUES %%s"
                       % ", ".join(QUERY_LOG_COLUMNS), rows, page_size=1000)


def open_sink(url):
    if url.startswith("sqlite:///"):
        return SqliteSink(url[len("sqlite://"):])
    return PostgresSink(url)


def _read_exactly(stream, n):
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def body_of(frame, spool):
    """(frame number, rows body) of a frame: the frame itself (number 0), or a record of the spool (fd)."""
    if frame[:1] != b"@":
        return 0, frame
    if spool is None or len(frame) != 1 + REF.size:
        raise ValueError("not a spool position, or no spool to read it from")
    offset, size = REF.unpack(frame[1:])
    data = os.pread(spool, size, offset)
    if len(data) != size:
        raise ValueError(f"the spool is shorter than {offset + size} bytes")
    return parse_record(data)


def owner(path):
    """
    The prefix of the runs of the spool files of this data directory (the
    directory of ``path``) on this host: another daemon using the same
    PostgreSQL database has other runs, which are not its to forget.
    """
    where = socket.gethostname() + "\0" + os.path.realpath(os.path.dirname(path))
    return hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ":"


def spool_run(spool, prefix=""):
    """The run of the spool file (fd) the frames are read from; None without one."""
    if spool is None:
        return None
    try:
        return prefix + run_of(os.pread(spool, HEADER_SIZE, 0))
    except (OSError, ValueError):
        return None


def serve(stdin, stdout, sink, group_rows=GROUP_ROWS, spool=None, prefix=""):
    """
    Frames in, one answer line per frame out, until stdin ends.  Frames
    already waiting (``stdin.ready()``, when the stream has it) are stored
    in the same transaction, up to ``group_rows`` rows.  spool: the spool
    file's descriptor, for frames that are a position in it.  Commands
    (L{command}: recovery, clear) are carried out alone, in order.
    prefix: of the runs (L{owner}).
    """
    names = Names()
    run = spool_run(spool, prefix)
    ready = getattr(stdin, "ready", None)
    body = None
    while True:
        if body is None:
            body = read_frame(stdin)
        if body is None:
            return  # stdin ended (or a frame cut short): the parent is gone
        if body[:1] in COMMANDS:
            answer = command(body, sink, run, names, _notes(stdout), group_rows, prefix)
            stdout.write(answer.encode() + b"\n")
            stdout.flush()
            body = None
            continue
        group = []  # per frame: (number, rows, bad) or an error answer
        total = 0
        ended = False
        while True:
            try:
                number, data = body_of(body, spool)
                rows, bad = normalise(marshal.loads(data), names)
            except (EOFError, ValueError, TypeError, OSError) as e:
                group.append(f"lost unreadable frame ({e})")
            else:
                group.append((number, rows, bad))
                total += len(rows)
            body = None
            if ready is None or total >= group_rows or not ready():
                break
            body = read_frame(stdin)
            if body is None:
                ended = True
                break
            if body[:1] in COMMANDS:
                break  # after this group
        failed = None
        try:
            sink.write([item[:2] for item in group if not isinstance(item, str)], run)
        except Exception as e:
            failed = _error(e)
            # A row the database cannot take fails the whole transaction:
            # without such rows (counted as bad), once more.
            group, removed = _storable(group)
            if removed:
                try:
                    sink.write([item[:2] for item in group if not isinstance(item, str)], run)
                    failed = None
                except Exception as e:
                    failed = _error(e)
        answers = []
        for item in group:
            if isinstance(item, str):
                answers.append(item)
            else:
                answers.append(failed or f"ok {len(item[1])} {item[2]}")
        stdout.write("".join(a + "\n" for a in answers).encode())
        stdout.flush()
        if ended:
            return


RECOVER = b"R"  # then RECOVER_ARGS, NUL-separated paths: where to move an unreadable file, the files
RECOVER_ARGS = struct.Struct("!d")  # rows up to this ts are not stored (a clear came first)
CLEAR = b"C"  # then CLEAR_ARGS
CLEAR_ARGS = struct.Struct("!Qd")  # frames up to this number count as stored; rows up to this ts go
COMMANDS = (RECOVER, CLEAR)


def command(body, sink, run, names, note, group_rows=GROUP_ROWS, prefix=""):
    """Carries out a command frame; returns its answer (``ok STORED BAD`` or ``error ...``)."""
    try:
        if body[:1] == CLEAR:
            upto, before = CLEAR_ARGS.unpack(body[1:])
            sink.clear(run, upto, before)
            return "ok 0 0"
        (cleared,) = RECOVER_ARGS.unpack_from(body, 1)
        aside, *paths = body[1 + RECOVER_ARGS.size:].decode(
            "utf-8", "surrogateescape").split("\0")
        stored = bad = 0
        for path in paths:
            s, b = recover(path, aside, sink, names, note, group_rows, cleared, prefix)
            stored, bad = stored + s, bad + b
        sink.forget(run, prefix)
        return f"ok {stored} {bad}"
    except struct.error as e:
        return f"lost unreadable command ({e})"
    except Exception as e:
        return _error(e)


def _notes(stdout):
    def note(message):
        stdout.write(("note " + " ".join(message.split()) + "\n").encode("utf-8", "replace"))

    return note


def recover(path, aside, sink, names, note, group_rows=GROUP_ROWS, cleared=float("-inf"),
            prefix=""):
    """
    Stores the frames of the spool file ``path`` (left by a daemon that did
    not stop cleanly) that were not stored yet, then removes the file.  A
    file that is not a spool (another version, garbage, too large) is
    moved to ``aside`` instead (replacing what was there).  Rows of
    queries up to ``cleared`` are not stored (``DELETE /api/query-logs``
    came before this recovery was done).  Returns (rows
    stored, rows skipped as malformed); a database error raises, and the
    file stays for the next try.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0, 0  # done by an earlier try
    except OSError as e:
        return _aside(path, aside, note, f"cannot open it: {e}")
    stored = bad = skipped = frames = 0
    try:
        size = os.fstat(fd).st_size
        if size > SPOOL_LIMIT + HEADER_SIZE:
            return _aside(path, aside, note, f"{size} bytes, larger than a spool can be")
        try:
            run = prefix + run_of(os.pread(fd, HEADER_SIZE, 0))
        except ValueError as e:
            return _aside(path, aside, note, str(e))
        scan = Scan(fd, size)
        group, rows_in_group = [], 0

        def store():
            nonlocal stored, skipped
            done = sink.write(group, run)
            stored += sum(len(rows) for number, rows in group if number not in done)
            skipped += len(done)
            group.clear()

        for number, body in scan:
            frames += 1
            try:
                rows, b = normalise(marshal.loads(body), names)
            except (EOFError, ValueError, TypeError):
                continue  # cannot happen to a whole record we wrote
            bad += b
            if cleared != float("-inf"):
                rows = [r for r in rows if r[0] > cleared]
            group.append((number, rows))
            rows_in_group += len(rows)
            if rows_in_group >= group_rows:
                store()
                rows_in_group = 0
        if group:
            store()
    except OSError as e:
        return _aside(path, aside, note, f"cannot read it: {e}")
    finally:
        os.close(fd)
    os.unlink(path)
    sync_directory(path)  # the removal reaches the disk before its frame set is dropped
    torn = f"; its torn last frame ({scan.torn} bytes) was dropped" if scan.torn else ""
    note(f"recovered {stored} rows from {path}, a spool left by a daemon that did not stop "
         f"cleanly ({frames} frames, {skipped} of them already stored){torn}")
    return stored, bad


def _aside(path, aside, note, why):
    try:
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError as e:
        try:
            os.unlink(path)
            where = f"removed (cannot move it to {aside}: {e})"
        except OSError as e2:
            where = f"left there (cannot move or remove it: {e2})"
    note(f"{path} is not a query-log spool that can be read ({why}); {where}")
    return 0, 0


def _error(e):
    return "error " + " ".join(str(e).split())[:300]


_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1  # INTEGER on PostgreSQL


def storable(row):
    """
    Can both databases store this row (as L{normalise} returns it)?  Not
    with a number out of range (``INTEGER``: 32 bits on PostgreSQL), a NaN
    time (SQLite stores NULL, and ``ts`` is NOT NULL), a string that is not
    valid Unicode (a lone surrogate) or holds a NUL.  Checked only when a
    transaction failed (L{serve}): our DNS code never records such rows.
    """
    ts, ip, name, qname, qtype, decision, reason, upstream, rcode, duration = row
    if ts != ts or not _INT_MIN <= qtype <= _INT_MAX:
        return False
    if rcode is not None and not _INT_MIN <= rcode <= _INT_MAX:
        return False
    for text in (ip, name, qname, decision, reason, upstream):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if "\x00" in text:
            return False
    return True


def _storable(group):
    """(the group with the rows L{storable} refuses counted as bad, how many)."""
    out, removed = [], 0
    for item in group:
        if isinstance(item, str):
            out.append(item)
            continue
        number, rows, bad = item
        good = [row for row in rows if storable(row)]
        removed += len(rows) - len(good)
        out.append((number, good, bad + len(rows) - len(good)))
    return out, removed


class FdReader:
    """
    Blocking reads from a file descriptor with its own buffer, and
    ``ready()``: is more input waiting (buffered or in the pipe)?
    """

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def read(self, n):
        buf = self.buf
        while len(buf) < n:
            chunk = os.read(self.fd, max(n - len(buf), 1 << 20))
            if not chunk:
                break
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def ready(self):
        if self.buf:
            return True
        return bool(select.select([self.fd], [], [], 0)[0])


def read_frame(stream):
    head = _read_exactly(stream, FRAME.size)
    if head is None:
        return None
    (size,) = FRAME.unpack(head)
    return _read_exactly(stream, size) if size <= MAX_FRAME else None


def lower_priority():
    """
    nice 19 and, on Linux, SCHED_IDLE: a DNS packet waking the daemon
    always preempts the writer at once (at nice 19 alone it could finish
    its time slice first).  The rows it has not stored yet wait in the
    spool; it runs whenever the core is otherwise idle.
    """
    try:
        os.nice(NICE)
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def die_with_parent():
    """
    Linux: killed when the daemon dies, so that a daemon started again
    never has this one still storing frames of the spool it recovers.
    Best effort (stdin's end stops it otherwise).
    """
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def main():
    die_with_parent()
    lower_priority()
    # Rows, names and frames hold no reference cycles: reference counting
    # frees everything, and the collector would only rescan the name cache.
    gc.disable()
    stdin = FdReader(sys.stdin.fileno())
    url = read_frame(stdin)
    path = read_frame(stdin)
    if url is None or path is None:
        return
    spool = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if path else None
    serve(stdin, sys.stdout.buffer, open_sink(url.decode("utf-8")), spool=spool,
          prefix=owner(os.fsdecode(path)) if path else "")


if __name__ == "__main__":
    main()
