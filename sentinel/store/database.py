"""
The two SQL backends behind the store: SQLite (embedded default, run on a
dedicated thread so the reactor never blocks) and PostgreSQL (txpostgres).

Both expose the same small surface so the store's SQL is written once:

    db.dialect                    "sqlite" or "postgres"
    db.start() / db.stop()        Deferreds
    db.run(fn, *args, write=...)  run fn(tx, *args) in ONE transaction;
                                  fn is a coroutine function using
                                  ``await tx.execute(sql, params)``

SQL uses ``?`` placeholders; the PostgreSQL backend translates them.
Write transactions are serialised in-process (one writer at a time), which
is what SQLite needs anyway and makes id allocation and the configuration
revision simple on PostgreSQL too.
"""

import os
import sqlite3
import stat

import psycopg2
from twisted.internet.defer import (
    Deferred,
    DeferredLock,
    ensureDeferred,
    inlineCallbacks,
    succeed,
)
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from txpostgres import txpostgres


def private_database_files(path):
    """
    Make the SQLite database (and its -wal/-shm/-journal files) readable by
    this user only: it holds password hashes, session digests and sealed
    secrets.  A new database is created 0600 (SQLite gives its side files
    the database file's mode); an existing one open to others -- e.g.
    created under umask 022 by an older version, in a data directory that
    is not 0700 -- is narrowed to 0600.  Files of another owner are left
    alone (chmod would fail; the database then opens as before).
    """
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError:
        return  # sqlite3.connect reports the real problem
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            st = os.stat(name)
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(name, stat.S_IMODE(st.st_mode) & 0o700)
                SqliteDatabase.log.warn("narrowed {name} to mode {mode:o} (it was readable "
                                        "by other users)", name=name,
                                        mode=stat.S_IMODE(st.st_mode) & 0o700)
        except OSError:
            pass


class StoreUnavailable(Exception):
    """The database cannot be reached right now (PostgreSQL down), or it fails
    for a reason outside the program (disk full, I/O error, read-only)."""


# SQLite errors that are about the file or the disk, not about the SQL: the
# operation fails as "store unavailable" (HTTP 503), with one log line.
_ENVIRONMENTAL = ("database or disk is full", "disk i/o error", "readonly database",
                  "malformed", "file is not a database", "unable to open database file",
                  "database is locked")


def _environmental(error):
    text = str(error).lower()
    return not isinstance(error, (sqlite3.IntegrityError, sqlite3.ProgrammingError)) and any(
        word in text for word in _ENVIRONMENTAL)


def _sync_call(fn, args):
    result = fn(*args)
    if hasattr(result, "send"):
        return ensureDeferred(result)
    return result


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, db, write):
        self._db = db
        self._write = write

    def execute(self, sql, params=()):
        return self._db._call(self._write, self._db._execute, self._write, sql, params)

    def executemany(self, sql, seq):
        return self._db._call(
            self._write, self._db._executemany, self._write, sql, list(seq)
        )


class SqliteDatabase:
    """
    SQLite in WAL mode with synchronous=FULL: a committed transaction
    survives a crash of the process or of the machine.  One connection and
    one thread for writes, one for reads; WAL lets them run side by side.
    """

    dialect = "sqlite"
    log = Logger()

    def __init__(self, path, reactor):
        self._path = path
        self._reactor = reactor
        self._pools = {}
        self._conns = {}
        self._locks = {True: DeferredLock(), False: DeferredLock()}
        self.available = False
        self.serving = False  # opened and migrated (set by the Store)
        self.problem = None  # the last run-time failure (disk full, I/O error, ...)

    @inlineCallbacks
    def start(self):
        """Open both connections (again, after a failed attempt)."""
        for write in (True, False):
            if write not in self._pools:
                pool = ThreadPool(1, 1, name=f"sqlite-{'w' if write else 'r'}")
                pool.start()
                self._pools[write] = pool
            if write not in self._conns:
                yield self._call(write, self._connect, write)
        self.available = True

    def _connect(self, write):
        if write:
            private_database_files(self._path)
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conns[write] = conn

    @inlineCallbacks
    def stop(self):
        self.available = False
        for write in (True, False):
            if write in self._pools:
                yield self._locks[write].acquire()
                try:
                    conn = self._conns.pop(write, None)
                    if conn is not None:
                        yield self._call(write, conn.close)
                finally:
                    self._locks[write].release()
                self._pools.pop(write).stop()

    def _call(self, write, fn, *args):
        return deferToThreadPool(self._reactor, self._pools[write], fn, *args)

    def _execute(self, write, sql, params):
        return self._conns[write].execute(sql, params).fetchall()

    def _executemany(self, write, sql, seq):
        self._conns[write].executemany(sql, seq)
        return []

    def run(self, fn, *args, write=True):
        return _shielded(self._locks[write].run(self._transaction, fn, args, write))

    @inlineCallbacks
    def _transaction(self, fn, args, write):
        if not self.available:
            raise StoreUnavailable("database is not open")
        tx = _SqliteTx(self, write)
        try:
            yield tx.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = yield _sync_call(fn, (tx,) + args)
            except BaseException:
                try:
                    yield tx.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolled back itself (I/O error): keep the real error
                raise
            yield tx.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if not _environmental(e):
                raise
            self._failing(e)
            raise StoreUnavailable(str(e)) from None
        if write and self.problem is not None:  # reads may work while writes fail
            if self.serving:
                self.log.info("the database {path} works again", path=self._path)
            self.problem = None
        return result

    def _failing(self, error):
        """One log line per distinct problem while serving (at open, the store
        service explains it), and the problem for /api/health."""
        problem = (f"the database {self._path} failed: {error}; changes and the query log "
                   f"cannot be saved until that is fixed (DNS answers from the configuration "
                   f"it has)")
        if problem != self.problem and self.serving:
            self.log.error("{problem}", problem=problem)
        self.problem = problem


class _PostgresTx:
    dialect = "postgres"

    def __init__(self, cursor):
        self._cursor = cursor

    @inlineCallbacks
    def execute(self, sql, params=()):
        yield self._cursor.execute(_pg_sql(sql), tuple(params))
        if self._cursor.description is None:
            return []
        return [tuple(_pg_value(v) for v in row) for row in self._cursor.fetchall()]

    @inlineCallbacks
    def executemany(self, sql, seq):
        """
        txpostgres has no executemany: a plain ``INSERT ... VALUES (?, ...)``
        becomes multi-row INSERTs (one round trip per chunk); anything else
        runs row by row.  Either way it stays inside the transaction.
        """
        rows = [tuple(params) for params in seq]
        head, sep, values = sql.rpartition(" VALUES ")
        if sep and head.lstrip().upper().startswith("INSERT") and values.strip().startswith("("):
            group = values.strip()
            for start in range(0, len(rows), self.chunk):
                chunk = rows[start:start + self.chunk]
                statement = f"{head} VALUES " + ", ".join([group] * len(chunk))
                yield self._cursor.execute(_pg_sql(statement), sum(chunk, ()))
            return []
        statement = _pg_sql(sql)
        for params in rows:
            yield self._cursor.execute(statement, params)
        return []

    chunk = 500


def _pg_sql(sql):
    if "%" in sql:
        raise ValueError("use ? placeholders; '%' is not allowed in store SQL")
    return sql.replace("?", "%s")


def _pg_value(value):
    return bytes(value) if isinstance(value, memoryview) else value


class PostgresDatabase:
    """
    PostgreSQL through txpostgres: one connection for writes and one for
    reads.  If the server cannot be reached, start() keeps retrying with
    exponential backoff (and says so in the log) while the rest of the
    daemon, DNS included, runs on; operations fail with L{StoreUnavailable}
    until the connection is back.
    """

    dialect = "postgres"
    log = Logger()
    first_backoff = 0.5
    max_backoff = 30.0

    def __init__(self, dsn, reactor, clock=None):
        self._dsn = dsn
        self._reactor = reactor
        self._clock = clock or reactor  # schedules the reconnection attempts
        self._conns = {}
        self._locks = {True: DeferredLock(), False: DeferredLock()}
        self._waiters = []
        self._connecting = False
        self._stopped = False
        self._retry = None
        self.available = False

    def start(self):
        """Fires once connected (which may take a while if the server is down)."""
        if self.available:
            return succeed(None)
        d = Deferred()
        self._waiters.append(d)
        if not self._connecting:
            self._connecting = True
            self._attempt(self.first_backoff)
        return d

    def _attempt(self, delay):
        self._retry = None
        self._connect_all().addCallbacks(self._connected, self._failed, errbackArgs=(delay,))

    def _connected(self, _):
        self._connecting = False
        self.available = True
        self.log.info("database connected")
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def _failed(self, failure, delay):
        if self._stopped:
            return
        self._retry = self._clock.callLater(
            delay, self._attempt, min(delay * 2, self.max_backoff)
        )
        # The first line of the message ("\n" alone has none: the type then).
        lines = (failure.getErrorMessage() or "").strip().splitlines()
        self.log.warn(
            "database unreachable ({reason}); retrying in {delay:.1f}s",
            reason=lines[0] if lines else failure.type.__name__, delay=delay,
        )

    @inlineCallbacks
    def _connect_all(self):
        for write in (True, False):
            old = self._conns.pop(write, None)
            if old is not None:
                _close_quietly(old)
            conn = txpostgres.Connection(reactor=self._reactor)
            yield conn.connect(self._dsn)
            self._conns[write] = conn

    def stop(self):
        self._stopped = True
        self.available = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        for conn in self._conns.values():
            _close_quietly(conn)
        self._conns.clear()
        return succeed(None)

    def run(self, fn, *args, write=True):
        return _shielded(self._locks[write].run(self._transaction, fn, args, write))

    @inlineCallbacks
    def _transaction(self, fn, args, write):
        if not self.available:
            raise StoreUnavailable("database is not connected")

        @inlineCallbacks
        def interaction(cursor):
            tx = _PostgresTx(cursor)
            if not write:
                yield tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return (yield _sync_call(fn, (tx,) + args))

        try:
            return (yield self._conns[write].runInteraction(interaction))
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            self._lost(e)
            raise StoreUnavailable(f"database connection lost: {e}") from None

    def _lost(self, error):
        if not self.available or self._stopped:
            return
        self.available = False
        self.log.warn("database connection lost ({error}); reconnecting", error=str(error).strip())
        self._connecting = True
        self._attempt(self.first_backoff)


def _shielded(inner):
    """
    The result of ``inner`` in a Deferred the caller may cancel without
    cancelling ``inner``.  Callers do cancel (Klein cancels a handler when
    its client disconnects; timeouts cancel): a cancellation reaching a
    transaction half-way could skip its COMMIT/ROLLBACK and leave the
    connection inside a transaction, failing every later call.  A started
    transaction always runs to its end; a cancelled caller just stops
    waiting for it.
    """
    outer = Deferred(lambda _: None)  # cancel(): errback CancelledError now

    def done(result):
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        return None  # a cancelled caller's late failure is nobody's to handle

    inner.addBoth(done)
    return outer


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:
        pass


def open_database(url, reactor):
    """sqlite:///path or postgresql://... -> a database backend."""
    if url.startswith("sqlite:///"):
        # sqlite:////abs and sqlite:///abs are the same file; name it one way in logs
        return SqliteDatabase("/" + url[len("sqlite://"):].lstrip("/"), reactor)
    return PostgresDatabase(url, reactor)
