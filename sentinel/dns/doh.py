"""
DNS over HTTPS (RFC 8484) to one upstream, with treq: POST of the wire
query (ID 0, as the RFC recommends for HTTP caching) as
``application/dns-message`` over a persistent HTTPS connection pool.  The
TCP connection goes to the pinned IP from the spec; TLS verifies the
certificate against the URL's host name, which is also sent as SNI and in
the Host header.  A response must be 200 ``application/dns-message`` and
echo our question.

HTTP/1.1 has no pipelining here: each request in progress holds a
connection of its own.  At most ``max_concurrent`` requests run at once
(L{MAX_CONCURRENT}); more wait in a queue (L{MAX_WAITING}, then the query
fails over as ``overload``), and a slot frees when a request ends, fails
or times out.  Before, a slow upstream and a burst of new names opened a
connection per query in flight -- thousands, past the process' file
descriptor limit (1024 by default), which DNS over TCP, the API and the
query log share.
"""

from collections import deque

from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from sentinel import httpbody
from sentinel.dns.answer import upstream_query
from sentinel.dns.wire import answers_question
from sentinel.quiet import QuietHTTPConnectionPool

log = Logger()
MAX_RESPONSE = 65535
MAX_CONCURRENT = 64  # requests (connections) in progress per upstream
MAX_WAITING = 1024  # queries waiting for one of them
CONTENT_TYPE = b"application/dns-message"


@implementer(IAgentEndpointFactory)
class _PinnedEndpoints:
    """Connect to the pinned IP whatever the URL's host; TLS for that host."""

    def __init__(self, reactor, ip, port, tls):
        self._reactor, self._ip, self._port, self._tls = reactor, ip, port, tls

    def endpointForURI(self, uri):
        kind = TCP6ClientEndpoint if ":" in self._ip else TCP4ClientEndpoint
        return wrapClientTLS(self._tls, kind(self._reactor, self._ip, self._port, timeout=5))


class DohTransport:
    kind = "https"

    def __init__(self, reactor, spec, tls, stats=None):
        import treq.client

        self.url = spec.url
        self.stats = stats
        self.pool = QuietHTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 4
        self.pool.cachedConnectionTimeout = 30
        self.pool.retryAutomatically = True
        agent = Agent.usingEndpointFactory(
            reactor, _PinnedEndpoints(reactor, spec.host, spec.port, tls), pool=self.pool)
        self.http = treq.client.HTTPClient(agent)
        self.closed = False
        self.max_concurrent = MAX_CONCURRENT
        self.active = 0  # requests in progress
        self._waiting = deque()  # attempts waiting for a slot (some may be done by now)
        self._draining = False

    def send(self, attempt):
        if self.closed:
            attempt.failed("network")
            return
        if self.active >= self.max_concurrent:
            waiting = self._waiting
            if len(waiting) >= MAX_WAITING:
                self._waiting = waiting = deque(a for a in waiting if not a.done)
            if len(waiting) >= MAX_WAITING:
                attempt.failed("overload")
                return
            attempt.token = None  # cancel(): nothing to stop; skipped when its turn comes
            waiting.append(attempt)
            return
        self._start(attempt)

    def _start(self, attempt):
        self.active += 1
        body = upstream_query(b"\x00\x00", attempt.question, attempt.flags)
        d = self.http.post(
            self.url, data=body,
            headers={b"content-type": [CONTENT_TYPE], b"accept": [CONTENT_TYPE]})
        attempt.token = d
        d.addCallback(self._response, attempt)
        d.addCallbacks(self._body, self._error, callbackArgs=(attempt,), errbackArgs=(attempt,))
        d.addBoth(self._ended)

    def _ended(self, result):
        """A request ended (answered, failed or cancelled): the next waiting one starts."""
        self.active -= 1
        if self._draining:  # a request that ended at once, started by the loop below
            return result
        self._draining = True
        try:
            waiting = self._waiting
            while waiting and self.active < self.max_concurrent and not self.closed:
                attempt = waiting.popleft()
                if not attempt.done:
                    self._start(attempt)
        finally:
            self._draining = False
        return result

    def _response(self, response, attempt):
        ctype = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if response.code != 200 or ctype.split(b";")[0].strip().lower() != CONTENT_TYPE:
            response.deliverBody(_Discard())
            raise _HttpError(f"HTTP {response.code} {ctype.decode('latin-1')}")
        return httpbody.collect(response, MAX_RESPONSE, lambda: _HttpError("response too large"))

    def _body(self, data, attempt):
        if attempt.done:
            return
        question = attempt.question
        qend = 12 + len(question)
        if not answers_question(data, question):
            if self.stats is not None:
                self.stats.error("spoofed")
            attempt.failed("malformed")
            return
        attempt.answered(data, qend)

    def _error(self, failure, attempt):
        if attempt.done:
            return
        from twisted.internet.defer import CancelledError

        if failure.check(CancelledError):
            return  # timed out: the forwarder reports it
        log.debug("DoH query to {url} failed: {e}", url=self.url,
                  e=failure.getErrorMessage())
        attempt.failed("http" if failure.check(_HttpError) else "network")

    def cancel(self, attempt):
        d = attempt.token
        if d is not None and not d.called:
            d.cancel()

    def close(self):
        self.closed = True
        waiting, self._waiting = self._waiting, deque()
        for attempt in waiting:
            if not attempt.done:
                attempt.failed("network")
        return self.pool.closeCachedConnections()


class _HttpError(Exception):
    pass


class _Discard:
    def makeConnection(self, transport):
        pass

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
