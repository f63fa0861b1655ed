"""The role state machine: every transition, including changes mid-switch."""

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster.roles import (
    FOLLOWER, FOLLOWER_GROUP, LEADER, LEADER_GROUP, STANDALONE, RoleMachine,
    effective_role, group_for, is_failover,
)
from sentinel.cluster.service import ServiceGroups


class EffectiveRoleTests(SynchronousTestCase):
    def test_table(self):
        table = [
            (STANDALONE, None, STANDALONE), (STANDALONE, LEADER, STANDALONE),
            (STANDALONE, FOLLOWER, STANDALONE),
            (LEADER, None, LEADER), (LEADER, LEADER, LEADER), (LEADER, FOLLOWER, FOLLOWER),
            (FOLLOWER, None, FOLLOWER), (FOLLOWER, FOLLOWER, FOLLOWER),
            (FOLLOWER, LEADER, LEADER),
        ]
        for configured, override, expected in table:
            self.assertEqual(effective_role(configured, override), expected,
                             (configured, override))

    def test_groups_and_failover(self):
        self.assertEqual(group_for(STANDALONE, FOLLOWER), LEADER_GROUP)
        self.assertEqual(group_for(LEADER, None), LEADER_GROUP)
        self.assertEqual(group_for(LEADER, FOLLOWER), FOLLOWER_GROUP)
        self.assertEqual(group_for(FOLLOWER, None), FOLLOWER_GROUP)
        # Failover: acts as leader for the VIP, but never runs the services
        # that write or serve configuration.
        self.assertEqual(group_for(FOLLOWER, LEADER), FOLLOWER_GROUP)
        self.assertTrue(is_failover(FOLLOWER, LEADER))
        self.assertFalse(is_failover(LEADER, LEADER))
        self.assertFalse(is_failover(FOLLOWER, None))


class Recorder:
    """apply() that records targets; each switch finishes when told to."""

    def __init__(self, auto=False):
        self.calls = []
        self.pending = []
        self.auto = auto

    def __call__(self, target):
        self.calls.append(target)
        if self.auto:
            return succeed(None)
        d = Deferred()
        self.pending.append(d)
        return d

    def finish(self):
        self.pending.pop(0).callback(None)


class RoleMachineTests(SynchronousTestCase):
    def test_nothing_runs_until_configured_role_known(self):
        rec = Recorder(auto=True)
        m = RoleMachine(rec)
        m.set_override(LEADER)
        m.set_override(FOLLOWER)
        self.assertEqual(rec.calls, [])
        self.assertIsNone(m.effective)
        m.set_configured(LEADER)
        self.assertEqual(rec.calls, [FOLLOWER_GROUP])
        self.assertEqual(m.active, FOLLOWER_GROUP)

    def test_standalone_runs_leader_group_and_ignores_override(self):
        rec = Recorder(auto=True)
        m = RoleMachine(rec)
        m.set_configured(STANDALONE)
        m.set_override(FOLLOWER)
        m.set_override(LEADER)
        m.set_override(None)
        self.assertEqual(rec.calls, [LEADER_GROUP])
        self.assertEqual(m.effective, STANDALONE)

    def test_every_transition(self):
        """From every (configured, override) to every other: the groups
        follow the effective role, and only changes of group switch."""
        states = [(c, o) for c in (STANDALONE, LEADER, FOLLOWER)
                  for o in (None, LEADER, FOLLOWER)]
        for start in states:
            for end in states:
                rec = Recorder(auto=True)
                m = RoleMachine(rec)
                m.set_override(start[1])
                m.set_configured(start[0])
                before = list(rec.calls)
                m.set_configured(end[0])
                m.set_override(end[1])
                want = group_for(*end)
                self.assertEqual(m.active, want, (start, end))
                # No switch unless the group changed (leader <-> standalone
                # keeps the leader group running).
                switched = rec.calls[len(before):]
                self.assertTrue(len(switched) <= 2, (start, end, switched))
                if group_for(*start) == want and group_for(end[0], start[1]) == want:
                    self.assertEqual(switched, [], (start, end))

    def test_role_flip_switches_groups(self):
        rec = Recorder(auto=True)
        m = RoleMachine(rec)
        m.set_configured(LEADER)
        m.set_override(FOLLOWER)
        m.set_override(LEADER)
        m.set_override(None)  # leader either way: no switch
        self.assertEqual(rec.calls, [LEADER_GROUP, FOLLOWER_GROUP, LEADER_GROUP])

    def test_change_mid_switch_is_applied_after(self):
        rec = Recorder()
        m = RoleMachine(rec)
        m.set_configured(LEADER)
        self.assertEqual(rec.calls, [LEADER_GROUP])
        m.set_override(FOLLOWER)  # arrives while the first switch runs
        self.assertEqual(rec.calls, [LEADER_GROUP])  # never two at once
        rec.finish()
        self.assertEqual(m.active, LEADER_GROUP)
        self.assertEqual(rec.calls, [LEADER_GROUP, FOLLOWER_GROUP])
        rec.finish()
        self.assertEqual(m.active, FOLLOWER_GROUP)
        self.assertEqual(m.effective, FOLLOWER)

    def test_change_and_revert_mid_switch_needs_no_second_switch(self):
        rec = Recorder()
        m = RoleMachine(rec)
        m.set_configured(LEADER)
        m.set_override(FOLLOWER)
        m.set_override(LEADER)
        rec.finish()
        self.assertEqual(rec.calls, [LEADER_GROUP])
        self.assertEqual(m.active, LEADER_GROUP)

    def test_failover_keeps_follower_services(self):
        rec = Recorder(auto=True)
        m = RoleMachine(rec)
        m.set_configured(FOLLOWER)
        m.set_override(LEADER)
        self.assertEqual(m.effective, LEADER)
        self.assertEqual(rec.calls, [FOLLOWER_GROUP])
        m.set_configured(LEADER)  # promoted (leave + enable-leader)
        self.assertEqual(rec.calls, [FOLLOWER_GROUP, LEADER_GROUP])

    def test_many_changes_mid_switch_end_on_latest(self):
        rec = Recorder()
        m = RoleMachine(rec)
        m.set_configured(LEADER)
        for role in (FOLLOWER, LEADER, FOLLOWER, None, FOLLOWER):
            m.set_override(role)
        rec.finish()
        rec.finish()
        self.assertEqual(rec.calls, [LEADER_GROUP, FOLLOWER_GROUP])
        self.assertEqual(m.active, FOLLOWER_GROUP)
        self.assertEqual(rec.pending, [])

    def test_failed_switch_still_settles(self):
        m = RoleMachine(lambda target: 1 / 0)
        m.set_configured(LEADER)
        self.assertEqual(m.active, LEADER_GROUP)
        self.flushLoggedErrors(ZeroDivisionError)

    def test_stopped_machine_ignores_everything(self):
        rec = Recorder()
        m = RoleMachine(rec)
        m.set_configured(LEADER)
        m.stop()
        m.set_override(FOLLOWER)
        rec.finish()
        self.assertEqual(rec.calls, [LEADER_GROUP])
        m.set_configured(FOLLOWER)
        self.assertEqual(rec.calls, [LEADER_GROUP])


class Tracked(Service):
    def __init__(self, log, name, stop_deferred=None):
        self.log, self.name_, self.stop_d = log, name, stop_deferred

    def startService(self):
        super().startService()
        self.log.append(("start", self.name_))

    def stopService(self):
        super().stopService()
        self.log.append(("stop", self.name_))
        return self.stop_d


class ServiceGroupsTests(SynchronousTestCase):
    def test_stop_other_group_before_starting(self):
        log = []
        leader, follower = MultiService(), MultiService()
        Tracked(log, "refresher").setServiceParent(leader)
        stopping = Deferred()
        Tracked(log, "sync-client", stopping).setServiceParent(follower)
        groups = ServiceGroups({LEADER_GROUP: leader, FOLLOWER_GROUP: follower})
        groups.apply(FOLLOWER_GROUP)
        self.assertEqual(log, [("start", "sync-client")])
        d = groups.apply(LEADER_GROUP)
        self.assertEqual(log[-1], ("stop", "sync-client"))
        self.assertNoResult(d)  # waits for the client to stop
        stopping.callback(None)
        self.successResultOf(d)
        self.assertEqual(log[-1], ("start", "refresher"))
        self.assertEqual(groups.running(), [LEADER_GROUP])
        self.successResultOf(groups.apply(LEADER_GROUP))  # idempotent
        self.assertEqual(log.count(("start", "refresher")), 1)
