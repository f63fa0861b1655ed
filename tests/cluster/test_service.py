"""The cluster service: loading membership (retrying), guard while starting."""

from twisted.application.service import MultiService
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.api.base import ApiError
from sentinel.cluster.guard import ReadOnlyGuard
from sentinel.cluster.roles import FOLLOWER_GROUP, LEADER_GROUP, RoleMachine
from sentinel.cluster.service import ClusterService, ServiceGroups
from sentinel.cluster.state import Membership


class FlakyState:
    """A ClusterState stand-in whose load fails a few times first."""

    def __init__(self, failures):
        self.failures = failures
        self.loaded = False
        self.membership = Membership()
        self._listeners = []

    @property
    def role(self):
        return self.membership.role

    def listen(self, fn):
        self._listeners.append(fn)

    def load(self):
        async def go():
            if self.failures:
                self.failures -= 1
                raise ConnectionError("database unreachable")
            self.loaded = True
            self.membership = Membership("follower", "http://198.18.0.53:8080", b"k" * 32)
            for fn in self._listeners:
                fn(self.membership)
        return go()


class ClusterServiceTests(SynchronousTestCase):
    def test_load_retries_then_starts_groups(self):
        clock = Clock()
        state = FlakyState(failures=2)
        groups = ServiceGroups({LEADER_GROUP: MultiService(), FOLLOWER_GROUP: MultiService()})
        machine = RoleMachine(groups.apply)
        service = ClusterService(state, machine, groups, lambda: succeed(None), clock)
        service.startService()
        self.assertEqual(groups.running(), [])  # nothing runs before the role is known
        clock.advance(1)
        self.assertEqual(groups.running(), [])
        clock.advance(2)
        self.assertEqual(groups.running(), [FOLLOWER_GROUP])
        self.successResultOf(service.stopService())
        self.assertEqual(groups.running(), [])

    def test_store_that_never_starts_leaves_roles_waiting(self):
        groups = ServiceGroups({LEADER_GROUP: MultiService(), FOLLOWER_GROUP: MultiService()})
        service = ClusterService(FlakyState(0), RoleMachine(groups.apply), groups,
                                 lambda: fail(RuntimeError("migration failed")), Clock())
        service.startService()
        self.assertEqual(groups.running(), [])
        self.flushLoggedErrors(RuntimeError)


class GuardTests(SynchronousTestCase):
    def test_refuses_while_starting_and_on_followers(self):
        state = FlakyState(0)
        guard = ReadOnlyGuard(state)
        e = self.failureResultOf(_d(guard.check(None)), ApiError).value
        self.assertEqual((e.status, e.code), (503, "STARTING"))
        state.loaded = True
        self.successResultOf(_d(guard.check(None)))
        state.membership = Membership("follower")
        e = self.failureResultOf(_d(guard.check(None)), ApiError).value
        self.assertEqual((e.status, e.code), (409, "FOLLOWER_READONLY"))
        state.membership = Membership("leader")
        self.successResultOf(_d(guard.check(None)))


def _d(coro):
    from twisted.internet.defer import ensureDeferred

    return ensureDeferred(coro)
