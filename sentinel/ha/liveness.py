"""
Fast crash detection: the sidecar keeps one idle TCP connection open to
the daemon's HTTP port.  When the daemon process dies, the kernel closes
its sockets, our connection drops at once, and a reconnect is refused:
the daemon is gone (milliseconds, not missed-check counts).  A connection
the daemon merely closed (idle timeout) reconnects and changes nothing.

A hung daemon still accepts connections (the kernel does that); the
readiness check (L{sentinel.ha.check}) catches hangs.
"""

from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger

from sentinel.periodic import Guarded

log = Logger()


class _Probe(Protocol):
    def connectionMade(self):
        self.factory.watch._connected(self)

    def connectionLost(self, reason):
        self.factory.watch._lost(self)


class _Factory(ClientFactory):
    protocol = _Probe
    noisy = False  # an attempt every RETRY seconds while the daemon is down

    def __init__(self, watch):
        self.watch = watch

    def clientConnectionFailed(self, connector, reason):
        self.watch._failed(reason)


class DaemonWatch:
    """on_change(alive: bool) is called on every change (and the first result)."""

    RETRY = 0.25  # seconds between attempts while the daemon is down
    TIMEOUT = 1.0

    def __init__(self, reactor, host, port, on_change):
        self._reactor = reactor
        self.host, self.port = host, port
        # A change whose report fails (writing the track file: disk full)
        # is logged and reported again at the next result.
        self._report = Guarded("the daemon liveness watch: reporting a change", on_change)
        self.alive = None  # the state last reported (successfully)
        self._observed = None  # the state last seen
        self._report_again = None  # a report failed: it is made again RETRY s later
        self._factory = _Factory(self)
        self._protocol = None
        self._pending = None
        self._running = False
        self._attempting = False

    def start(self):
        self._running = True
        self._attempt()

    def stop(self):
        self._running = False
        for call in (self._pending, self._report_again):
            if call is not None and call.active():
                call.cancel()
        self._pending = self._report_again = None
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abortConnection()
        self._protocol = None

    def _attempt(self):
        self._pending = None
        if not self._running or self._attempting:
            return
        self._attempting = True
        self._reactor.connectTCP(self.host, self.port, self._factory, timeout=self.TIMEOUT)

    def _set(self, alive):
        self._observed = alive
        if alive != self.alive:
            self._report(alive)
            if not self._report.failures:  # it worked
                self.alive = alive
            elif self._running and (self._report_again is None
                                    or not self._report_again.active()):
                # Made again even if nothing else happens: a daemon that came
                # up keeps its connection open, and no later result would
                # report it (the node would stay out of the election).
                self._report_again = self._reactor.callLater(self.RETRY, self._retry_report)

    def _retry_report(self):
        self._report_again = None
        if self._running:
            self._set(self._observed)

    def _connected(self, protocol):
        self._attempting = False
        if not self._running:
            protocol.transport.abortConnection()
            return
        self._protocol = protocol
        self._set(True)

    def _lost(self, protocol):
        if protocol is self._protocol:
            self._protocol = None
        if self._running:
            # Reconnect at once: refused means the daemon is gone.
            self._schedule(0)

    def _failed(self, reason):
        self._attempting = False
        if self._running:
            self._schedule(self.RETRY)  # first: whatever reporting does, attempts go on
            self._set(False)

    def _schedule(self, delay):
        if self._pending is None or not self._pending.active():
            self._pending = self._reactor.callLater(delay, self._attempt)
