"""
A TCP proxy on loopback that a test controls, to make a server misbehave
without touching it: ``refuse()`` (new connections are closed at once, like
a server that is down), ``stall()`` (the connections open now stop passing
data either way and stay open: a network black hole, no RST), ``allow()``
(new connections pass again), ``deafen()`` (requests still reach the
server, its answers are dropped), ``silence()`` (new connections are
accepted and never answered).  ``stop()`` closes everything it opened.
"""

from twisted.internet import protocol, reactor


class _Side(protocol.Protocol):
    peer = None

    def connectionMade(self):
        self.factory.proxy._opened.append(self)

    def dataReceived(self, data):
        if self in self.factory.proxy._stalled:
            return  # swallowed: the black hole
        if isinstance(self, _Server) and self in self.factory.proxy._deaf:
            return  # the server's answers are lost
        if self.peer is not None:
            self.peer.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason):
        if self in self.factory.proxy._stalled:
            return
        if self.peer is not None:
            self.peer.transport.loseConnection()


class _Client(_Side):
    """The side facing the program under test."""

    def connectionMade(self):
        super().connectionMade()
        self.pending = []
        if self.factory.proxy._refusing:
            self.transport.abortConnection()
            return
        if self.factory.proxy._silent:
            self.factory.proxy._stalled.add(self)  # accepted, never answered
            return
        self.transport.pauseProducing()
        server = protocol.ClientFactory()
        server.protocol = _Server
        server.proxy = self.factory.proxy
        server.client = self
        reactor.connectTCP(self.factory.proxy.host, self.factory.proxy.port, server)


class _Server(_Side):
    def connectionMade(self):
        super().connectionMade()
        self.peer = self.factory.client
        self.peer.peer = self
        for data in self.peer.pending:
            self.transport.write(data)
        self.peer.transport.resumeProducing()


class Proxy:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self._opened = []
        self._stalled = set()
        self._deaf = set()
        self._refusing = False
        self._silent = False
        factory = protocol.ServerFactory()
        factory.protocol = _Client
        factory.proxy = self
        self._listener = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.listen_port = self._listener.getHost().port

    def refuse(self):
        self._refusing = True

    def allow(self):
        self._refusing = self._silent = False

    def silence(self):
        """New connections are accepted and never answered."""
        self._silent = True

    def stall(self):
        """Every connection open now goes silent (both ways) and stays open."""
        self._stalled.update(side for side in self._opened if side.transport.connected)

    def deafen(self):
        """The connections open now pass what the client sends, and drop
        every answer: a request is carried out, its outcome never heard."""
        self._deaf.update(side for side in self._opened
                          if isinstance(side, _Server) and side.transport.connected)

    def stop(self):
        for side in self._opened:
            side.transport.abortConnection()
        return self._listener.stopListening()
