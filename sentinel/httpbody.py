"""
Reading an HTTP response body with a size limit (treq's ``content`` and
``collect`` read any length and cannot be cancelled).  Used for what comes
from other servers: a DoH upstream's answers (L{sentinel.dns.doh}) and the
cluster leader's sync answers (L{sentinel.cluster.client}); L{stream} hands
a body on piece by piece (blocklist downloads, L{sentinel.filtering.fetch}).
"""

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss


def collect(response, limit, too_large, cut=False):
    """
    A Deferred for the body of ``response``, at most ``limit`` bytes.  A
    longer one fails with ``too_large()`` (refused by its Content-Length
    before reading when it has one; a chunked body is cut off at the
    limit and its connection closed), or with ``cut`` fires with its first
    ``limit`` bytes.  Cancelling it (a deadline) stops the download: an
    endless body is not read on after its reader gave up.
    """
    body = BoundedBody(limit, too_large, cut)
    length = response.length
    if isinstance(length, int) and length > limit and not cut:
        body.limit = -1  # refused before reading: closes the connection
    response.deliverBody(body)
    return body.done


def stream(response, feed):
    """
    A Deferred firing (with None) once the body of ``response`` has been
    handed to ``feed`` piece by piece.  It fails with what ``feed`` raises
    (and the download stops) or with the connection's error.  Cancelling it
    (a deadline) stops the download and closes the connection -- treq's
    ``collect`` cannot be cancelled and would read a trickling body on for
    nobody, holding its socket, for as long as the server cares to send.
    """
    reader = _Streamed(feed)
    response.deliverBody(reader)
    return reader.done


class _Reader(Protocol):
    """A body reader whose ``done`` Deferred, cancelled, stops the download."""

    def __init__(self):
        self.done = Deferred(self._cancel)

    def _stop(self):
        if self.transport is not None:
            self.transport.stopProducing()

    def _cancel(self, _):
        self._stop()

    def result(self):
        return None

    def connectionLost(self, reason):
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(self.result())
        else:
            self.done.errback(reason if reason.check(ResponseFailed) else ResponseFailed([reason]))


class _Streamed(_Reader):
    def __init__(self, feed):
        super().__init__()
        self.feed = feed

    def dataReceived(self, data):
        if self.done.called:
            return
        try:
            self.feed(data)
        except Exception:
            self._stop()
            self.done.errback()


class BoundedBody(_Reader):
    """Collects a body (``done``) up to ``limit`` bytes; see L{collect}."""

    def __init__(self, limit, too_large, cut=False):
        super().__init__()
        self.limit = limit
        self.too_large = too_large
        self.cut = cut
        self.size = 0
        self.parts = []

    def _stop(self):
        self.parts = []
        super()._stop()

    def result(self):
        return b"".join(self.parts)

    def connectionMade(self):
        if self.limit < 0:
            self._stop()
            self.done.errback(self.too_large())

    def dataReceived(self, data):
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit and self.cut:
            self.parts.append(data[:len(data) - (self.size - self.limit)])
            data = b"".join(self.parts)
            self._stop()
            self.done.callback(data)
            return
        if self.size > self.limit:
            self._stop()
            self.done.errback(self.too_large())
            return
        self.parts.append(data)
