"""
DNS over TCP (RFC 7766): 2-byte length framing, several queries per
connection (answered as they complete, possibly out of order), an idle
timeout, and caps on concurrent connections (in all, and per client
address: one device must not hold every connection, keeping them open
with a query every few seconds, and shut the others out of TCP) and on
queries outstanding per connection (reading pauses until answers go out).

A client that sends queries and does not read the answers cannot make the
server hold them all in memory: the protocol is the transport's streaming
producer, so reading pauses while the transport's send buffer is full
(Twisted's 64 KiB mark, on top of the kernel's socket buffer) and resumes
when it has drained.  Such a connection is aborted at its idle timeout
(closing it politely would wait for the client to read).
"""

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

log = Logger()


@implementer(IPushProducer)
class DnsTcpProtocol(Int16StringReceiver, TimeoutMixin):
    MAX_LENGTH = 65535
    tcp = True
    sendto = None  # the fast path replies through send()
    max_outstanding = 32

    def __init__(self, factory):
        self.factory = factory
        self.outstanding = 0
        self.busy = False  # max_outstanding queries unanswered
        self.backlogged = False  # the transport's send buffer is full
        self.paused = False  # reading paused (busy or backlogged)
        self.closed = False
        self._receiving = False  # in dataReceived (see _flow)
        self.peer = None
        self.client = None  # the address counted against max_per_client

    def connectionMade(self):
        factory = self.factory
        factory.connections += 1
        if factory.connections > factory.max_connections:
            factory.stats.drop("tcp_connections")
            self.transport.abortConnection()
            return
        peer = self.transport.getPeer()
        if not factory.admit(self, peer.host):
            factory.stats.drop("tcp_per_client")
            self.transport.abortConnection()
            return
        self.peer = (peer.host, peer.port)
        self.transport.registerProducer(self, True)
        self.setTimeout(factory.idle_timeout)

    def stringReceived(self, data):
        if self.closed or self.peer is None:
            return
        self.resetTimeout()
        self.outstanding += 1
        if self.outstanding >= self.max_outstanding and not self.busy:
            self.busy = True
            self._flow()
        self.factory.engine.handle(data, self.peer, self, None)

    def _done(self):
        self.outstanding -= 1
        if self.busy and self.outstanding < self.max_outstanding // 2:
            self.busy = False
            self._flow()
        self.resetTimeout()

    def dataReceived(self, data):
        self._receiving = True
        try:
            super().dataReceived(data)
        finally:
            self._receiving = False

    def _flow(self):
        """
        Pause or resume reading from the client, as busy and backlogged
        say.  ``paused`` also stops Int16StringReceiver's loop over the
        frames already received; on resume, those are answered at once
        (the client may have sent them all and be waiting): here, or by
        that loop itself when it is what resumed.
        """
        pause = self.busy or self.backlogged
        if pause != self.paused and not self.closed:
            self.paused = pause
            if pause:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()
                if not self._receiving and self._unprocessed:
                    self.dataReceived(b"")

    # IPushProducer: the transport calls these when its send buffer passes
    # its high-water mark, and when it has drained.

    def pauseProducing(self):
        self.backlogged = True
        self._flow()

    def resumeProducing(self):
        self.backlogged = False
        self._flow()

    def stopProducing(self):
        pass

    # The port interface the engine replies through.

    def send(self, reply, addr, cmsg):
        if self.closed:
            return
        self._done()
        if len(reply) > 65535:
            return
        self.sendString(reply)

    def drop(self, addr):
        if not self.closed:
            self._done()
            self.transport.loseConnection()

    def local_address(self, cmsg):
        return self.transport.getHost().host

    def timeoutConnection(self):
        if self.backlogged:  # answers not read for a whole idle timeout
            self.factory.stats.drop("tcp_unread")
            self.transport.abortConnection()
            return
        if self.outstanding:
            self.setTimeout(self.factory.idle_timeout)  # still answering
            return
        self.transport.loseConnection()

    def lengthLimitExceeded(self, length):
        self.transport.abortConnection()

    def connectionLost(self, reason):
        self.closed = True
        self.setTimeout(None)
        self.factory.connections -= 1
        if self.client is not None:
            self.factory.release(self.client)
            self.client = None


class DnsTcpFactory(ServerFactory):
    """
    ``max_per_client``: connections one client address may hold at once
    (an IPv4-mapped address counts as the IPv4 one); ``exempt(host)`` says
    which addresses have no such limit (the rate limit's exempt networks:
    loopback by default, e.g. a local forwarder).  Over either cap a new
    connection is aborted at once and counted (``tcp_connections``,
    ``tcp_per_client``).
    """

    def __init__(self, engine, stats, idle_timeout=10.0, max_connections=256, clock=None,
                 max_per_client=32, exempt=None):
        self.engine = engine
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.exempt = exempt  # callable(host) -> bool, or None
        self.connections = 0
        self.per_client = {}  # client address -> open connections (exempt ones not counted)
        self.clock = clock

    def admit(self, proto, host):
        """Count a new connection of ``host`` (False: over its cap)."""
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        if self.exempt is not None and self.exempt(host):
            return True
        n = self.per_client.get(host, 0)
        if n >= self.max_per_client:
            return False
        self.per_client[host] = n + 1
        proto.client = host
        return True

    def release(self, host):
        n = self.per_client.get(host, 1) - 1
        if n > 0:
            self.per_client[host] = n
        else:
            self.per_client.pop(host, None)

    def buildProtocol(self, addr):
        p = DnsTcpProtocol(self)
        if self.clock is not None:
            p.callLater = self.clock.callLater
        return p
