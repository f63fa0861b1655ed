"""
fetch() with the daemon's own HTTP client against a real list server on
loopback: what a slow, huge or broken server costs us.  The deadline runs
on a Clock; the network is real.
"""

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from sentinel.filtering import fetch
from sentinel.filtering.fetch import FetchError
from tests.filtering.listserver import ListResource


class LoopbackFetchTests(TestCase):
    timeout = 30

    def setUp(self):
        self.lists = ListResource()
        self.clock = Clock()
        port = reactor.listenTCP(0, Site(self.lists), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    def fetch(self, path, **kw):
        return ensureDeferred(self._fetch(path, **kw))

    async def _fetch(self, path, **kw):
        return await fetch.fetch(fetch.http_client(reactor), self.clock, self.base + path, **kw)

    async def until(self, condition):
        for _ in range(500):
            if condition():
                return
            await deferLater(reactor, 0.01)
        self.fail("condition not reached")

    async def test_deadline_closes_a_trickling_download(self):
        """A server that sends headers and then trickles: at the deadline the
        download fails AND its connection is closed -- not left open,
        collecting bytes for nobody, once per refresh."""
        self.lists.serve("/l", "0.0.0.0 a.example.com\n", status="drip")
        d = self.fetch("/l")
        await self.until(lambda: self.lists.hanging)
        request = self.lists.hanging[0]
        closed = []
        request.notifyFinish().addBoth(closed.append)
        self.clock.advance(fetch.DEFAULT_TIMEOUT)
        failure = await self.assertFailure(d, FetchError)
        self.assertIn("no complete answer within 60 seconds", str(failure))
        await self.until(lambda: closed)

    async def test_a_certificate_we_cannot_trust_is_named_as_such(self):
        from tests.dns.tlsservers import make_ca_and_server

        _, options = make_ca_and_server(names=("lists.test",), ips=("127.0.0.1",))
        self.lists.serve("/l", "a.example.com\n")
        port = reactor.listenSSL(0, Site(self.lists), options, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"https://127.0.0.1:{port.getHost().port}/l"
        failure = await self.assertFailure(ensureDeferred(
            fetch.fetch(fetch.http_client(reactor), self.clock, url)), FetchError)
        self.assertEqual(str(failure), "download failed: TLS error: certificate verify failed")

    async def test_an_error_answer_is_reported_without_reading_its_body(self):
        """An error status or a redirect is known from its status line: a body
        that then trickles neither hides the HTTP error behind a time-out nor
        holds the download (and its slot) for the whole time limit."""
        self.lists.serve("/err", "<h1>Service Unavailable</h1>", status=503, drip=True)
        self.lists.serve("/moved", "moved", status=302, drip=True,
                         headers={"Location": "/real"})
        self.lists.serve("/real", "a.example.com\n")
        failure = await self.assertFailure(self.fetch("/err"), FetchError)
        self.assertEqual(str(failure), f"HTTP 503 from {self.base}/err")
        got = await self.fetch("/moved")
        self.assertEqual(got.body, b"a.example.com\n")
