"""
DNS over TCP and DNS over TLS (RFC 7858) to one upstream: one persistent
connection, queries pipelined on it (RFC 7766) and matched by ID and
question, closed after ``idle_timeout`` seconds without queries.  TLS
verifies the certificate against the configured name (sent as SNI) or,
for an IP-only spec, against the IP address.

A connection on which a query timed out with no answer at all since that
query was written is dead (a peer gone without a reset, a NAT mapping
dropped, a server that stopped reading): it is aborted, the queries still
on it fail over at once, and the next query opens a new connection.
Without this, a busy network would keep a dead connection forever, as
queries keep it from ever being idle.
"""

import struct

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int16StringReceiver

from sentinel.dns.answer import upstream_query
from sentinel.dns.wire import answers_question, random_ids

log = Logger()
MAX_PENDING = 1000


class _Conn(Int16StringReceiver):
    MAX_LENGTH = 65535

    def __init__(self, owner):
        self.owner = owner
        self.pending = {}
        self.answers = 0  # answers received (see StreamTransport.cancel)
        self.lost = Deferred()

    def connectionMade(self):
        self.owner._conns.add(self)
        self.owner._connected(self)

    def stringReceived(self, data):
        attempt = self.pending.get(data[:2])
        if attempt is None:
            self.owner._spoofed()
            return
        question = attempt.question
        qend = 12 + len(question)
        if not answers_question(data, question):
            self.owner._spoofed()
            return
        del self.pending[data[:2]]
        self.answers += 1
        self.owner._idle_check(self)
        attempt.answered(data, qend)

    def lengthLimitExceeded(self, length):
        self.transport.abortConnection()

    def connectionLost(self, reason):
        self.owner._conns.discard(self)
        self.owner._lost(self)
        self.lost.callback(None)


class StreamTransport:
    def __init__(self, reactor, host, port, tls=None, stats=None, idle_timeout=10.0,
                 connect_timeout=5):
        self.reactor = reactor
        self.host, self.port = host, port
        self.kind = "tls" if tls is not None else "tcp"
        self.stats = stats
        self.idle_timeout = idle_timeout
        endpoint_type = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        endpoint = endpoint_type(reactor, host, port, timeout=connect_timeout)
        if tls is not None:
            endpoint = wrapClientTLS(tls, endpoint)
        self.endpoint = endpoint
        self._conn = None  # connected _Conn
        self._conns = set()  # every open connection (an idle one may still be closing)
        self._connecting = None  # Deferred while connecting
        self._queue = []  # attempts waiting for the connection
        self._idle = None
        self.closed = False

    def send(self, attempt):
        if self.closed:
            attempt.failed("network")
            return
        conn = self._conn
        if conn is None:
            self._queue.append(attempt)
            attempt.token = None
            if self._connecting is None:
                self._connect()
            return
        self._write(conn, attempt)

    def _write(self, conn, attempt):
        if len(conn.pending) >= MAX_PENDING:
            attempt.failed("overload")
            return
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        qid = random_ids.next()
        while qid in conn.pending:
            qid = random_ids.next()
        conn.pending[qid] = attempt
        attempt.token = (conn, qid, conn.answers)
        data = upstream_query(qid, attempt.question, attempt.flags)
        conn.transport.write(struct.pack("!H", len(data)) + data)

    def _connect(self):
        factory = Factory.forProtocol(lambda: _Conn(self))
        factory.noisy = False  # no "Starting factory" line per upstream connection
        d = self._connecting = self.endpoint.connect(factory)
        d.addErrback(self._connect_failed)

    def _connected(self, conn):
        self._connecting = None
        self._conn = conn
        queue, self._queue = self._queue, []
        for attempt in queue:
            if not attempt.done:
                self._write(conn, attempt)
        self._idle_check(conn)

    def _connect_failed(self, failure):
        self._connecting = None
        log.debug("cannot connect to {host}:{port}: {e}", host=self.host, port=self.port,
                  e=failure.getErrorMessage())
        queue, self._queue = self._queue, []
        for attempt in queue:
            attempt.failed("network")

    def _lost(self, conn):
        if self._conn is conn:
            self._conn = None
        if self._connecting is not None and self._conn is None and not self._queue:
            self._connecting = None
        pending, conn.pending = conn.pending, {}
        for attempt in pending.values():
            attempt.failed("network")
        if self._queue and self._connecting is None and not self.closed:
            self._connect()

    def _idle_check(self, conn):
        if not conn.pending and self._conn is conn:
            if self._idle is not None and self._idle.active():
                self._idle.cancel()
            self._idle = self.reactor.callLater(self.idle_timeout, self._close_idle, conn)

    def _close_idle(self, conn):
        if not conn.pending:
            if self._conn is conn:
                self._conn = None
            conn.transport.loseConnection()

    def cancel(self, attempt):
        """The attempt timed out (see the module doc for what that says of its connection)."""
        token = attempt.token
        if token is None:
            if attempt in self._queue:
                self._queue.remove(attempt)
            return
        conn, qid, answers = token
        if conn.pending.get(qid) is attempt:
            del conn.pending[qid]
            if conn.answers == answers and conn.connected:
                log.info("{kind} connection to {host}:{port} answered nothing for a whole "
                         "timeout; opening a new one", kind=self.kind.upper(), host=self.host,
                         port=self.port)
                if self._conn is conn:
                    self._conn = None
                conn.transport.abortConnection()
                return
            self._idle_check(conn)

    def _spoofed(self):
        if self.stats is not None:
            self.stats.error("spoofed")

    def close(self):
        """Close the connection; the Deferred fires once it is gone."""
        self.closed = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if self._connecting is not None:
            self._connecting.cancel()
        queue, self._queue = self._queue, []
        for attempt in queue:
            attempt.failed("network")
        conns = [c for c in self._conns if c.connected]
        for conn in conns:
            conn.transport.loseConnection()
        return gatherResults([c.lost for c in conns]) if conns else succeed(None)
