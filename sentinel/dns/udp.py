"""
Plain DNS over UDP to one upstream.

Queries leave through a small pool of connected UDP sockets whose source
ports the kernel picks at random; each socket is replaced after it has
carried ``rotate_after`` queries, so an off-path attacker has to guess a
random 16-bit ID *and* a changing source port.  A connected socket only
receives datagrams from the upstream's address and port, and a response is
accepted only if its ID is one we are waiting for on that socket and its
question is the one we asked; anything else is dropped and counted as
``spoofed``.
"""

from twisted.logger import Logger

from sentinel.dns.answer import upstream_query
from sentinel.dns.sockets import RECV_SIZE, UdpClientSocket
from sentinel.dns.wire import TC, answers_question, random_ids

log = Logger()


class UdpTransport:
    kind = "udp"

    def __init__(self, reactor, host, port, stats=None, pool=4, rotate_after=2000, ports=None):
        self.reactor = reactor
        self.ports = ports if ports is not None else set()  # shared: loop detection
        self.host, self.port = host, port
        self.stats = stats
        self.pool_size = pool
        self.rotate_after = rotate_after
        self._pool = []
        self._retired = []
        self.closed = False

    @property
    def local_ports(self):
        return {s.local_port for s in self._pool + self._retired}

    def _new_socket(self):
        sock = UdpClientSocket(self.reactor, self.host, self.port, self._on_data, self._on_error)
        self.ports.add(sock.local_port)
        return sock

    def _close(self, sock):
        self.ports.discard(sock.local_port)
        sock.close()

    def _pick(self, qid):
        pool = self._pool
        while len(pool) < self.pool_size:
            pool.append(self._new_socket())
        i = qid[0] % len(pool)
        sock = pool[i]
        if sock.used >= self.rotate_after:
            self._retire(sock)
            sock = pool[i] = self._new_socket()
        return sock

    def _retire(self, sock):
        if sock.pending:
            self._retired.append(sock)
        else:
            self._close(sock)

    def send(self, attempt):
        if self.closed:
            attempt.failed("network")
            return
        qid = random_ids.next()
        try:
            sock = self._pick(qid)
        except OSError:
            attempt.failed("network")
            return
        while qid in sock.pending:
            qid = random_ids.next()
        sock.used += 1
        sock.pending[qid] = attempt
        attempt.token = (sock, qid)
        try:
            sock.sock.send(upstream_query(qid, attempt.question, attempt.flags))
        except OSError:
            del sock.pending[qid]
            attempt.failed("network")

    def cancel(self, attempt):
        token = attempt.token
        if token is not None:
            sock, qid = token
            if sock.pending.get(qid) is attempt:
                del sock.pending[qid]
            if not sock.pending and sock in self._retired:
                self._retired.remove(sock)
                self._close(sock)

    def _on_data(self, sock, data):
        attempt = sock.pending.get(data[:2])
        if attempt is None:
            self._spoofed()
            return
        question = attempt.question
        qend = 12 + len(question)
        if not answers_question(data, question):
            self._spoofed()
            return
        del sock.pending[data[:2]]
        if len(data) >= RECV_SIZE:  # possibly cut: get the whole answer over TCP
            data = data[:2] + bytes([data[2] | TC]) + data[3:]
        if not sock.pending and sock in self._retired:
            self._retired.remove(sock)
            self._close(sock)
        attempt.answered(data, qend)

    def _spoofed(self):
        if self.stats is not None:
            self.stats.error("spoofed")

    def _on_error(self, sock, err):
        # ICMP unreachable on a connected socket: the upstream is not there.
        # A retired socket has nothing left to wait for: closed now (its
        # queries fail here, so no timeout will come to cancel() and close
        # it; it used to stay open, a file descriptor lost per rotation).
        pending, sock.pending = sock.pending, {}
        if sock in self._retired:
            self._retired.remove(sock)
            self._close(sock)
        for attempt in pending.values():
            attempt.failed("network")

    def close(self):
        self.closed = True
        for sock in self._pool + self._retired:
            pending, sock.pending = sock.pending, {}
            self._close(sock)
            for attempt in pending.values():
                attempt.failed("network")
        self._pool, self._retired = [], []
