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
    CancelledError,
    Deferred,
    DeferredLock,
    ensureDeferred,
    inlineCallbacks,
    succeed,
)
from twisted.internet.error import ConnectionClosed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from txpostgres import txpostgres

from sentinel.store.pgsession import session_settings


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


class StoreTimeout(StoreUnavailable):
    """PostgreSQL cancelled a statement at ``statement_timeout``: a read over
    a large part of the query log (statistics for a long window), or a lock
    held by another connection.  The connection is fine; the same request
    will likely take as long again."""


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

    def run(self, fn, *args, write=True, patient=False):
        """patient: no time limit (PostgreSQL only: schema migrations)."""
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
    reads.  ``start()`` connects once and fails with L{StoreUnavailable} if
    the server cannot be reached (the store service retries with backoff,
    and DNS runs on meanwhile).  A connection lost at run time (the server
    restarted, the backend killed, a network black hole) is reconnected in
    the background with exponential backoff; operations fail with
    L{StoreUnavailable} until it is back.

    Nothing waits for the server forever: a transaction or a connection
    attempt that has not finished after ``query_timeout`` seconds fails
    (the connection is dropped and made again), libpq TCP keepalives find a
    dead peer of an idle connection, and the server cancels a statement
    after half of it (a lock held by someone else) and ends a
    transaction whose client went away (``idle_in_transaction_session_timeout``,
    so its row locks do not block the next connection).
    """

    dialect = "postgres"
    log = Logger()
    first_backoff = 0.5
    max_backoff = 30.0
    query_timeout = 30.0

    def __init__(self, dsn, reactor, clock=None):
        self._dsn = dsn
        self._reactor = reactor
        self._clock = clock or reactor  # schedules timeouts and reconnection attempts
        self._conns = {}
        self._locks = {True: DeferredLock(), False: DeferredLock()}
        self._connecting = False
        self._generation = 0  # bumped by stop(): late connections of an old one are closed
        self._retry = None
        self.available = False
        self.serving = False  # opened and migrated (set by the Store)
        self.problem = None  # why the connection was lost, until it is back (for /api/health)

    def start(self):
        """Connect (again, after a failed attempt or a stop); fails with
        L{StoreUnavailable} if the server cannot be reached now."""
        if self.available:
            return succeed(None)
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._generation += 1
        self._connecting = True
        generation = self._generation

        def failed(failure):
            if generation == self._generation:
                self._connecting = False
            raise StoreUnavailable(_first_line(failure)) from None

        return self._connect_all(generation).addCallbacks(
            lambda _: self._connected(generation), failed)

    def _attempt(self, delay, generation):
        self._retry = None
        self._connect_all(generation).addCallbacks(
            lambda _: self._connected(generation), self._failed,
            errbackArgs=(delay, generation))

    def _connected(self, generation):
        if generation != self._generation:
            return
        if any(w not in self._conns for w in (True, False)):  # lost while connecting
            self._attempt(self.first_backoff, generation)
            return
        self._connecting = False
        self.available = True
        if self.problem is not None:
            self.log.info("database connected again")
        self.problem = None

    def _failed(self, failure, delay, generation):
        if generation != self._generation:
            return
        self._retry = self._clock.callLater(
            delay, self._attempt, min(delay * 2, self.max_backoff), generation)
        self.log.warn("database unreachable ({reason}); retrying in {delay:.1f}s",
                      reason=_first_line(failure), delay=delay)

    @inlineCallbacks
    def _connect_all(self, generation):
        """Connect the connections that are missing (a lost one is dropped
        alone: the other may be in the middle of a transaction)."""
        while True:
            missing = [w for w in (True, False) if w not in self._conns]
            if not missing:
                return
            conn = _Connection(reactor=self._reactor)
            yield self._deadline(conn.connect(self._dsn, **session_settings(self._dsn, self.query_timeout)),
                                 "connecting", lambda conn=conn: _close_quietly(conn))
            if generation != self._generation:  # stopped meanwhile
                _close_quietly(conn)
                raise StoreUnavailable("the database was closed")
            self._conns[missing[0]] = conn
            conn.on_broken = lambda error, w=missing[0], c=conn: self._lost(w, c, error)

    def _deadline(self, inner, what, give_up):
        """
        ``inner``'s result, or L{StoreUnavailable} if it has not come after
        ``query_timeout`` seconds: then ``give_up()`` (drop the connection;
        ``inner`` may never fire, and is not waited for).
        """
        outer = Deferred()
        timed_out = []

        def expired():
            timed_out.append(True)
            give_up()  # (closing may fire ``inner``: ignored below)
            outer.errback(StoreUnavailable(
                f"the database did not answer ({what}) within {self.query_timeout:g}s"))

        timer = self._clock.callLater(self.query_timeout, expired)

        def done(result):
            if timed_out:
                return None  # a late result after the timeout: nobody waits for it
            timer.cancel()
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
            return None

        inner.addBoth(done)
        return outer

    def stop(self):
        self._generation += 1
        self._connecting = False
        self.available = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            _close_quietly(conn)
        return succeed(None)

    def run(self, fn, *args, write=True, patient=False):
        """
        patient: no time limit, neither here nor on the server (schema
        migrations: building an index on a large query log may take
        minutes; TCP keepalives still find a dead server).
        """
        return _shielded(self._locks[write].run(self._transaction, fn, args, write, patient))

    @inlineCallbacks
    def _transaction(self, fn, args, write, patient=False):
        if not self.available or write not in self._conns:
            raise StoreUnavailable("database is not connected")

        conn = self._conns[write]

        @inlineCallbacks
        def transaction():
            cursor = conn.cursor()
            yield cursor.execute("BEGIN")
            try:
                tx = _PostgresTx(cursor)
                if not write:
                    yield tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if patient:
                    yield tx.execute("SET LOCAL statement_timeout = 0")
                result = yield _sync_call(fn, (tx,) + args)
            except BaseException:
                try:
                    yield cursor.execute("ROLLBACK")
                except psycopg2.Error as e:
                    # The connection broke (killed, reset): nothing was
                    # committed; report what failed first.
                    self._lost(write, conn, str(e))
                raise
            yield cursor.execute("COMMIT")
            return result

        try:
            result = yield (transaction() if patient else self._deadline(
                transaction(), "a transaction", lambda: self._lost(write, conn, "no answer")))
        except ConnectionClosed as e:  # txpostgres, when a connection closes mid-query
            self._lost(write, conn, str(e))
            raise StoreUnavailable(f"database connection lost: {e}") from None
        except psycopg2.Error as e:
            if not _pg_environmental(e):
                if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)):
                    self._lost(write, conn, str(e))
                    raise StoreUnavailable(
                        f"database connection lost: {_one_line(str(e))}") from None
                raise
            self._failing(e)
            raise StoreUnavailable(_one_line(str(e))) from None
        except CancelledError:
            # The server cancelled a statement at statement_timeout (txpostgres
            # turns QueryCanceledError into this): a lock held elsewhere, a
            # slow server.  The connection itself is fine.
            raise StoreTimeout(
                f"the database cancelled a statement after {self.query_timeout / 2:g}s "
                f"(statement_timeout)") from None
        if write and self.problem is not None and self.available:
            self.log.info("the database works again")
            self.problem = None
        return result

    def _failing(self, error):
        """The server refuses the work (disk full, read-only, a privilege
        revoked, a table dropped): one log line per distinct problem, and
        the problem for /api/health, until a write works again."""
        problem = (f"the database failed: {_one_line(str(error))}; changes and the query log "
                   f"cannot be saved until that is fixed (DNS answers from the configuration "
                   f"it has)")
        if problem != self.problem:
            self.log.error("{problem}", problem=problem)
        self.problem = problem

    def _lost(self, write, conn, error):
        """Drop the connection ``conn`` (if still in use) and reconnect."""
        if self._conns.get(write) is not conn:
            return  # already dropped
        del self._conns[write]
        _close_quietly(conn)
        self.available = False
        reason = _one_line(error)
        self.problem = (f"the database connection was lost ({reason}); changes cannot be "
                        f"saved until it is back (DNS answers from the configuration it has)")
        self.log.warn("database connection lost ({error}); reconnecting", error=reason)
        if not self._connecting:
            self._connecting = True
            self._attempt(self.first_backoff, self._generation)


# SQLSTATEs (or their classes) of a server that refuses the work for a reason
# outside the program: HTTP 503 and a problem in /api/health, not a 500.  The
# connection is kept.
_PG_ENVIRONMENTAL = (
    "53",     # insufficient resources: disk full, out of memory, too many connections
    "58",     # system error: I/O
    "XX001", "XX002",  # data or index corrupted
    "25006",  # read-only transaction (a standby, default_transaction_read_only)
    "42501",  # insufficient privilege (a REVOKE)
    "42P01",  # undefined table (a table dropped under us)
    "3F000",  # invalid schema name (a schema dropped under us)
    "40001", "40P01",  # serialization failure, deadlock: try again
    "57P03",  # cannot connect now (starting up, shutting down)
)


def _pg_environmental(error):
    code = getattr(error, "pgcode", None) or ""
    return any(code.startswith(prefix) for prefix in _PG_ENVIRONMENTAL)


def _one_line(text):
    return (text.strip().splitlines() or ["connection lost"])[0]


class _Connection(txpostgres.Connection):
    """
    txpostgres's connection, telling its owner when the server drops it
    while it is idle (txpostgres raises from the reactor then: an
    "Unhandled Error" traceback in the log, and nobody reconnects until
    the next query fails), and quiet about a refused connection attempt
    (it re-registers a socket libpq has closed: another traceback).
    """

    on_broken = None

    def doRead(self):
        try:
            super().doRead()
        except ValueError:
            # libpq let go of the socket (fileno -1) after a failed connection
            # attempt; the pending Deferred reports that failure.
            pass
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            if self.on_broken is None:
                raise
            self.on_broken(str(e))


def _first_line(failure):
    """The first line of a failure's message ("\\n" alone has none: the type then)."""
    lines = (failure.getErrorMessage() or "").strip().splitlines()
    return lines[0] if lines else failure.type.__name__


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
        conn.on_broken = None  # it is being dropped: no news of it wanted
        conn.close()
    except Exception:
        pass


def open_database(url, reactor):
    """sqlite:///path or postgresql://... -> a database backend."""
    if url.startswith("sqlite:///"):
        # sqlite:////abs and sqlite:///abs are the same file; name it one way in logs
        return SqliteDatabase("/" + url[len("sqlite://"):].lstrip("/"), reactor)
    return PostgresDatabase(url, reactor)
