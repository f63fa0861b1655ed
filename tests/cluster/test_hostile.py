"""
A follower whose leader URL answers anything at all — the leader, a broken
proxy, something pretending to be the leader — at the HTTP level: error
pages, redirects, truncated, endless and oversized bodies, unsigned and
replayed answers.  The follower never follows the answer anywhere, never
holds more than it must, gives one clear error per run of failures (status
and log), and recovers by itself when the leader answers properly again
(docs/CLUSTER.md, "Failure modes").  Bad content in a properly signed
answer is tests/cluster/test_badpayload.py; the seeded fuzz of both is
tests/cluster/test_syncfuzz.py.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.internet.error import ConnectionLost
from twisted.web._newclient import ResponseDone, ResponseFailed, _DataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from sentinel.cluster import client as client_module
from sentinel.cluster import codec, signing
from sentinel.cluster.client import SyncClient
from tests.cluster.test_client import State, Store

LEADER = "fedcba9876543210"
HISTORY = "a" * 16


class Transport:
    """The response body's transport: the test sees whether it was stopped."""

    def __init__(self):
        self.stopped = False

    def stopProducing(self):
        self.stopped = True

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class Response:
    def __init__(self, code, headers=None, length=UNKNOWN_LENGTH):
        self.code = code
        self.headers = Headers({k: [v] for k, v in (headers or {}).items()})
        self.length = length
        self.protocol = None
        self.transport = Transport()

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, data):
        if not self.transport.stopped:
            self.protocol.dataReceived(data)

    def end(self, reason=None):
        self.protocol.connectionLost(Failure(reason or ResponseDone()))


class Leader:
    """
    Answers each request with ``answer(nonce, headers, kw)``: a Response
    (whose body the test sends), or None for a good signed "unchanged".
    """

    def __init__(self, answer, clock):
        self.answer = answer
        self.clock = clock
        self.requests = []
        self.keys = State().keys

    def request(self, method, url, headers=None, **kw):
        self.requests.append((method, url, kw))
        nonce = headers[signing.H_NONCE]
        response = self.answer(nonce, headers, kw)
        if response is None:  # a leader holds an idle poll for its wait
            return deferLater(self.clock, 5, self.good, nonce)
        return succeed(response)

    def good(self, nonce):
        body = codec.encode(codec.Batch("unchanged", LEADER, HISTORY, 3, 3), self.keys.wire,
                            nonce)
        return self.signed(nonce, body)

    def signed(self, nonce, body, status=200):
        headers = signing.sign_response(self.keys, nonce, status, body, self.clock.seconds())
        response = Response(status, headers, len(body))
        response.body = body
        return response


class Collecting(list):
    def __call__(self, event):
        self.append(event)


class HostileHttpTests(SynchronousTestCase):
    def make(self, answer):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.leader = Leader(answer, self.clock)
        self.responses = []
        original = self.leader.request

        def request(*a, **kw):
            d = original(*a, **kw)
            d.addCallback(self._deliver)
            return d

        self.leader.request = request
        c = SyncClient(State(), Store(), None, self.leader, self.clock, wait=5)
        self.events = Collecting()
        globalLogPublisher.addObserver(self.events)
        self.addCleanup(globalLogPublisher.removeObserver, self.events)
        c.startService()
        self.addCleanup(lambda: c.running and c.stopService())
        self.clock.advance(0)
        return c

    def _deliver(self, response):
        # The answer's headers first; bodies set up front are sent when read.
        self.responses.append(response)
        body = getattr(response, "body", None)
        if body is not None:
            deliver = response.deliverBody

            def deliver_now(protocol):
                deliver(protocol)
                response.send(body)
                response.end()

            response.deliverBody = deliver_now
        return response

    def elapse(self, seconds):
        """Let ``seconds`` pass, timers firing on time."""
        for _ in range(int(seconds * 4)):
            self.clock.advance(0.25)

    def failed_lines(self):
        return [e for e in self.events
                if e.get("log_format", "").startswith("cluster: sync failed")]

    def plain(self, code, body, ctype="text/html"):
        response = Response(code, {"Content-Type": ctype}, len(body))
        response.body = body
        return response

    def test_endless_body_is_stopped_at_the_deadline(self):
        """A 200 whose body never ends: the sync times out, and the download
        stops there (before, it went on in the background, buffered, up to
        256 MiB per poll given up)."""
        c = self.make(lambda nonce, headers, kw: Response(200))
        response = self.responses[0]
        for _ in range(14):
            response.send(b"x" * 1024)
            self.clock.advance(1)
        self.assertFalse(response.transport.stopped)
        self.clock.advance(1.5)  # wait 5 + slack 10
        self.assertEqual(c.status.last_error["code"], "TIMEOUT")
        self.assertTrue(response.transport.stopped)
        self.assertEqual(response.protocol.parts, [])  # what was read is dropped

    def test_length_over_the_limit_is_refused_before_reading(self):
        c = self.make(lambda nonce, headers, kw: Response(200, length=client_module.MAX_BODY + 1))
        response = self.responses[0]
        self.assertEqual((c.status.last_error["code"], c.status.last_error["message"]),
                         ("BAD_PAYLOAD", "The leader's answer is too large."))
        self.assertTrue(response.transport.stopped)

    def test_endless_error_page_is_cut_not_waited_for(self):
        c = self.make(lambda nonce, headers, kw: Response(500, {"Content-Type": "text/html"}))
        response = self.responses[0]
        for _ in range(100):
            response.send(b"<p>" * 1000)
        self.assertTrue(response.transport.stopped)  # at 64 KiB, long before the deadline
        self.assertEqual((c.status.last_error["code"], c.status.last_error["message"]),
                         ("HTTP_500", "The leader answered HTTP 500."))

    def test_redirect_is_not_followed(self):
        """The signed request is never sent on to wherever a Location points
        (treq follows redirects unless told not to)."""
        c = self.make(lambda nonce, headers, kw: self.plain(
            302, b"", "text/plain") if kw.get("allow_redirects") is False else None)
        self.assertEqual(c.status.last_error["code"], "HTTP_302")

    def test_http_oddities_each_give_one_clear_error(self):
        cases = [
            (lambda n: self.plain(500, b"<html><h1>Internal Server Error</h1></html>"),
             "HTTP_500", "The leader answered HTTP 500."),
            (lambda n: self.plain(404, b"<html>Not here</html>"), "HTTP_404",
             "The leader answered HTTP 404."),
            (lambda n: self.plain(200, b"<html>captive portal</html>"), "UNSIGNED",
             "The leader's answer is not signed."),
            (lambda n: self.plain(502, b'{"error": "' + b"X" * 5000 + b'", "message": "m"}',
                                  "application/json"),
             "HTTP_502", "The leader answered HTTP 502."),
            (lambda n: self.plain(503, b'{"error": "BUSY\\n", "message": "m"}',
                                  "application/json"),
             "HTTP_503", "The leader answered HTTP 503."),
            (lambda n: self.plain(503, b'{"error": "BUSY", "message": ["not", "text"]}',
                                  "application/json"),
             "HTTP_503", "The leader answered HTTP 503."),
            (lambda n: self.plain(503, b'{"error": "BUSY", "message": "line\\nbreak\\u0000"}',
                                  "application/json"),
             "BUSY", "The leader answered 503: line break "),
            (lambda n: self.plain(503, b"[" * 100000, "application/json"),
             "HTTP_503", "The leader answered HTTP 503."),
        ]
        for make, code, message in cases:
            c = self.make(lambda nonce, headers, kw: make(nonce))
            self.assertEqual((c.status.last_error["code"], c.status.last_error["message"]),
                             (code, message))
            c.stopService()

    def test_truncated_body_is_a_lost_connection(self):
        c = self.make(lambda nonce, headers, kw: Response(200, length=1000))
        response = self.responses[0]
        response.send(b'{"v": 1, "mo')
        response.end(ResponseFailed([Failure(ConnectionLost()), Failure(_DataLoss())]))
        self.assertEqual(c.status.last_error["code"], "LEADER_UNREACHABLE")
        self.assertEqual(c.status.last_error["message"], "Cannot reach the leader: Connection "
                         "to the other side was lost in a non-clean fashion; the answer was "
                         "cut off.")

    def test_replayed_answer_is_refused(self):
        """A good answer to one request, sent again to answer the next."""
        first = []

        def answer(nonce, headers, kw):
            if not first:
                first.append(self.leader.good(nonce))
                return first[0]
            again = Response(200, {h: first[0].headers.getRawHeaders(h)[0]
                                   for h in (signing.H_TIMESTAMP, signing.H_SIGNATURE)},
                             len(first[0].body))
            again.body = first[0].body
            return again

        c = self.make(answer)
        self.assertEqual(c.status.syncs, 1)
        self.clock.advance(0)
        self.assertEqual(c.status.last_error["code"], "BAD_SIGNATURE")
        self.assertEqual(c.status.syncs, 1)

    def test_unexpected_errors_log_one_traceback_per_run_and_recover(self):
        """A bug reached by some answer: one traceback for the run of
        failures (and a reminder every 20th), not one per retry."""
        broken = [True]

        def answer(nonce, headers, kw):
            if broken[0]:
                raise RuntimeError("a bug")
            return None

        c = self.make(answer)
        self.elapse(60)
        self.assertGreater(c.status.failures, 10)
        self.assertEqual(c.status.last_error["code"], "INTERNAL_ERROR")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.failed_lines()), 1)
        broken[0] = False
        self.elapse(10)
        self.assertEqual(c.status.failures, 0)
        self.assertGreater(c.status.syncs, 0)
        self.assertIsNotNone(c.status.last_success)

    def test_repeated_failures_log_one_line_per_run_and_code(self):
        state = {"answer": lambda n: self.plain(500, b"oops")}
        c = self.make(lambda nonce, headers, kw: state["answer"](nonce))
        self.elapse(25)
        self.assertEqual(len(self.failed_lines()), 1)
        state["answer"] = lambda n: self.plain(200, b"unsigned")
        self.elapse(25)
        self.assertLess(c.status.failures, 20)  # no reminder yet
        self.assertEqual([e["code"] for e in self.failed_lines()], ["HTTP_500", "UNSIGNED"])
        state["answer"] = lambda n: None  # the leader is back
        self.elapse(10)
        self.assertEqual(c.status.failures, 0)
        self.assertGreater(c.status.syncs, 0)
