"""
DNS over TCP (RFC 7766): 2-byte length framing, several queries per
connection (answered as they complete, possibly out of order), an idle
timeout, and caps on concurrent connections and on queries outstanding
per connection (reading pauses until answers go out).
"""

from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin

log = Logger()


class DnsTcpProtocol(Int16StringReceiver, TimeoutMixin):
    MAX_LENGTH = 65535
    tcp = True
    sendto = None  # the fast path replies through send()
    max_outstanding = 32

    def __init__(self, factory):
        self.factory = factory
        self.outstanding = 0
        self.paused = False
        self.closed = False
        self.peer = None

    def connectionMade(self):
        factory = self.factory
        factory.connections += 1
        if factory.connections > factory.max_connections:
            factory.stats.drop("tcp_connections")
            self.transport.abortConnection()
            return
        peer = self.transport.getPeer()
        self.peer = (peer.host, peer.port)
        self.setTimeout(factory.idle_timeout)

    def stringReceived(self, data):
        if self.closed or self.peer is None:
            return
        self.resetTimeout()
        self.outstanding += 1
        if self.outstanding >= self.max_outstanding and not self.paused:
            self.paused = True
            self.transport.pauseProducing()
        self.factory.engine.handle(data, self.peer, self, None)

    def _done(self):
        self.outstanding -= 1
        if self.paused and self.outstanding < self.max_outstanding // 2 and not self.closed:
            self.paused = False
            self.transport.resumeProducing()
        self.resetTimeout()

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


class DnsTcpFactory(ServerFactory):
    def __init__(self, engine, stats, idle_timeout=10.0, max_connections=256, clock=None):
        self.engine = engine
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections = 0
        self.clock = clock

    def buildProtocol(self, addr):
        p = DnsTcpProtocol(self)
        if self.clock is not None:
            p.callLater = self.clock.callLater
        return p
