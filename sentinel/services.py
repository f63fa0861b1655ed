"""Small generic services used by the wiring in L{sentinel.tap}."""

from twisted.application.service import Service
from twisted.internet.defer import maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from sentinel.startup import explain_listen_error, fatal

log = Logger()


class ListeningService(Service):
    """
    Listen in privilegedStartService (before twistd drops privileges) and
    turn bind failures into one actionable line and a non-zero exit.

    listen: callable() -> IListeningPort (or a list of them).
    """

    def __init__(self, what, port, proto, listen):
        self.what, self.port, self.proto = what, port, proto
        self._listen = listen
        self.ports = []

    def privilegedStartService(self):
        super().privilegedStartService()
        if not self.ports:
            self._bind()

    def startService(self):
        super().startService()
        if not self.ports:
            self._bind()

    def _bind(self):
        try:
            result = self._listen()
        except CannotListenError as e:
            fatal(explain_listen_error(self.what, self.port, self.proto, e))
        self.ports = list(result) if isinstance(result, (list, tuple)) else [result]

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        from twisted.internet.defer import gatherResults

        return gatherResults([maybeDeferred(p.stopListening) for p in ports])


class StoreService(Service):
    """Opens the store in the background: nothing waits for it to start."""

    def __init__(self, store):
        self.store = store
        self.started = None  # Deferred firing once the store is usable

    def startService(self):
        super().startService()
        self.started = self.store.start()
        self.started.addErrback(self._failed)

    def _failed(self, failure):
        log.failure("could not open the store", failure)
        return failure

    def stopService(self):
        super().stopService()
        return self.store.stop()
