"""The sync client loop: timeouts, unreachable leaders, backoff, cancellation."""

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import ResponseNeverReceived

from sentinel.cluster import client as client_module
from sentinel.cluster.client import SyncClient
from sentinel.cluster.signing import ClusterKeys
from sentinel.cluster.state import Membership


class State:
    loaded = True
    node_id = "0123456789abcdef"
    epoch = 1

    def __init__(self, role="follower"):
        self.membership = Membership(role, "http://198.18.0.53:8080", b"s" * 32)
        self.keys = ClusterKeys.from_secret(b"s" * 32)

    @property
    def role(self):
        return self.membership.role


class Store:
    def get_local(self, key, default=None):
        from twisted.internet.defer import succeed

        return succeed(None)


class Silent:
    """A leader that accepts the request and never answers."""

    def __init__(self):
        self.requests = []

    def request(self, method, url, **kw):
        d = Deferred(lambda d: None)
        self.requests.append((method, url, d))
        return d


class Refusing:
    def __init__(self):
        self.count = 0

    def request(self, method, url, **kw):
        self.count += 1
        return fail(ConnectionRefusedError())


class ClientLoopTests(SynchronousTestCase):
    def make(self, http, role="follower"):
        self.clock = Clock()
        self.dropped = []
        c = SyncClient(State(role), Store(), None, http, self.clock, wait=5,
                       drop_connections=lambda: self.dropped.append(self.clock.seconds()))
        c.startService()
        self.addCleanup(lambda: c.running and c.stopService())
        self.clock.advance(0)
        return c

    def test_silent_leader_times_out(self):
        http = Silent()
        c = self.make(http)
        self.assertEqual(len(http.requests), 1)
        self.assertIn("/api/cluster/sync/changes?since=0&history=0000000000000000&wait=5",
                      http.requests[0][1])
        self.clock.advance(5 + client_module.SLACK)
        self.assertEqual(c.status.last_error["code"], "TIMEOUT")
        self.assertEqual(c.status.failures, 1)

    def test_unreachable_backs_off_and_recovers_count(self):
        http = Refusing()
        c = self.make(http)
        self.assertEqual(http.count, 1)
        self.assertEqual(c.status.last_error["code"], "LEADER_UNREACHABLE")
        delays = []
        for _ in range(7):
            before = http.count
            waited = 0
            while http.count == before:
                self.clock.advance(0.25)
                waited += 0.25
            delays.append(waited)
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0])

    def test_reconnect_drops_the_poll_in_flight_and_kept_connections(self):
        """The VIP moved (or the leader URL changed): a poll that may hang on
        a connection to where the VIP was is not waited for."""
        http = Silent()
        c = self.make(http)
        self.clock.advance(3)
        c.reconnect()
        self.clock.advance(0)
        self.assertEqual(self.dropped, [3])
        self.assertEqual(len(http.requests), 2)  # at once, not after the 15 s timeout
        self.assertTrue(http.requests[0][2].called)  # the first one cancelled
        self.assertEqual((c.status.last_error, c.status.failures), (None, 0))

    def test_reconnect_skips_the_backoff(self):
        http = Refusing()
        c = self.make(http)
        self.clock.advance(0.1)
        c.reconnect()
        self.clock.advance(0)
        self.assertEqual(http.count, 2)
        self.assertEqual(c.status.failures, 2)

    def test_lost_connection_is_said_in_one_sentence(self):
        class Lost:
            def request(self, method, url, **kw):
                return fail(ResponseNeverReceived([Failure(ConnectionLost())]))

        c = self.make(Lost())
        self.assertEqual(c.status.last_error["message"], "Cannot reach the leader: Connection "
                         "to the other side was lost in a non-clean fashion.")

    def test_stop_cancels_in_flight_without_error(self):
        http = Silent()
        c = self.make(http)
        c.stopService()
        self.assertIsNone(c.status.last_error)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resync_restarts_at_once_without_error(self):
        http = Silent()
        c = self.make(http)
        c.resync()
        self.clock.advance(0)
        self.assertIsNone(c.status.last_error)
        self.assertEqual(len(http.requests), 2)
        self.assertIn("since=0&history=0000000000000000", http.requests[1][1])

    def test_configured_leader_has_nothing_to_follow(self):
        http = Silent()
        c = self.make(http, role="leader")
        self.clock.advance(10)
        self.assertEqual(http.requests, [])
        self.assertTrue(c.status.idle)
