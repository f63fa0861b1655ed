"""
Roles: the configured role (stored), the override from the role file
(written by keepalived), the effective role, and ONE state machine that
starts and stops the service groups to match it.

    configured   override   effective      running
    standalone   (ignored)  standalone     leader_only
    leader       -/leader   leader         leader_only
    leader       follower   follower       follower_only (nothing to follow: idle)
    follower     -/follower follower       follower_only (the sync client)
    follower     leader     leader         follower_only ("failover active")

A standalone node ignores the override: without cluster sync there is
nothing to lead or follow, and its configuration is its own.

A configured follower that owns the VIP (failover) is reported as leader
but keeps its follower services: it serves DNS with its last
configuration, stays read-only (see L{sentinel.cluster.guard}) and keeps
trying to reach the leader.  The leader-only services write configuration
(blocklist downloads, session pruning) or serve it (sync); running them
there would make the follower diverge from the leader it follows.

The machine is I/O-free: switching is delegated to ``apply(group)`` (a
Deferred-returning callable).  A change that arrives while a switch is
running is remembered and acted on when it finishes, so the groups always
end up matching the latest effective role, never two switches at once.
"""

from automat import MethodicalMachine
from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

STANDALONE, LEADER, FOLLOWER = "standalone", "leader", "follower"
ROLES = (STANDALONE, LEADER, FOLLOWER)
LEADER_GROUP, FOLLOWER_GROUP = "leader_only", "follower_only"

log = Logger()


def effective_role(configured, override):
    if configured not in (LEADER, FOLLOWER):
        return STANDALONE
    return override if override in (LEADER, FOLLOWER) else configured


def group_for(configured, override):
    """The service group for a configured role and a role-file override."""
    if configured == FOLLOWER:
        return FOLLOWER_GROUP  # also in failover: see the module docstring
    return FOLLOWER_GROUP if effective_role(configured, override) == FOLLOWER else LEADER_GROUP


def is_failover(configured, override):
    """A configured follower acting as leader because it owns the VIP."""
    return configured == FOLLOWER and override == LEADER


class RoleMachine:
    _m = MethodicalMachine()

    def __init__(self, apply):
        self._apply = apply
        self.configured = None  # unknown until loaded from the store
        self.override = None
        self.active = None  # the group running (or last switched to)
        self._target = None
        self.switches = 0

    # -- what callers use ----------------------------------------------------

    @property
    def effective(self):
        return None if self.configured is None else effective_role(self.configured, self.override)

    @property
    def desired(self):
        if self.configured is None:
            return None
        return group_for(self.configured, self.override)

    def set_configured(self, role):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        self.configured = role
        self._changed()

    def set_override(self, role):
        self.override = role if role in (LEADER, FOLLOWER) else None
        self._changed()

    def stop(self):
        """Stop reacting (the daemon is shutting down)."""
        self._shutdown()

    # -- the machine -----------------------------------------------------------

    @_m.state(initial=True)
    def waiting(self):
        "The configured role is not known yet: nothing runs."

    @_m.state()
    def stable(self):
        "The running group matches the effective role."

    @_m.state()
    def switching(self):
        "Stopping one group and starting the other."

    @_m.state()
    def stopped(self):
        "Shut down."

    @_m.input()
    def _known(self):
        "The configured role became known."

    @_m.input()
    def _differs(self):
        "The desired group is not the one running."

    @_m.input()
    def _same(self):
        "Nothing to do."

    @_m.input()
    def _done_settled(self):
        "A switch finished and the desired group is still its target."

    @_m.input()
    def _done_stale(self):
        "A switch finished but the role changed meanwhile."

    @_m.input()
    def _shutdown(self):
        "Stop."

    @_m.output()
    def _start_switch(self):
        target = self._target = self.desired
        self.switches += 1
        log.info("cluster: switching to {group} (effective role {role})",
                 group=target, role=self.effective)
        d = maybeDeferred(self._apply, target)
        d.addErrback(lambda f: log.failure("cluster: switching services failed", f))
        d.addCallback(lambda _: self._finished(target))

    @_m.output()
    def _note_active(self):
        self.active = self._target

    waiting.upon(_known, enter=switching, outputs=[_start_switch])
    waiting.upon(_same, enter=waiting, outputs=[])
    waiting.upon(_shutdown, enter=stopped, outputs=[])
    stable.upon(_differs, enter=switching, outputs=[_start_switch])
    stable.upon(_same, enter=stable, outputs=[])
    stable.upon(_shutdown, enter=stopped, outputs=[])
    switching.upon(_differs, enter=switching, outputs=[])  # handled when done
    switching.upon(_same, enter=switching, outputs=[])
    switching.upon(_done_settled, enter=stable, outputs=[_note_active])
    switching.upon(_done_stale, enter=switching, outputs=[_note_active, _start_switch])
    switching.upon(_shutdown, enter=stopped, outputs=[])
    stopped.upon(_known, enter=stopped, outputs=[])
    stopped.upon(_differs, enter=stopped, outputs=[])
    stopped.upon(_same, enter=stopped, outputs=[])
    stopped.upon(_done_settled, enter=stopped, outputs=[])
    stopped.upon(_done_stale, enter=stopped, outputs=[])
    stopped.upon(_shutdown, enter=stopped, outputs=[])

    def _changed(self):
        if self.configured is None:
            self._same()
        elif self.active is None and self._target is None:
            self._known()
        elif self.desired != self.active:
            self._differs()
        else:
            self._same()

    def _finished(self, target):
        if self.desired == target:
            self._done_settled()
        else:
            self._done_stale()
