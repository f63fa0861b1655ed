"""
The read-only guard (configured followers refuse changes) and readiness
(what keepalived's check script asks every second).
"""

from datetime import datetime, timezone

from sentinel.api.base import ApiError
from sentinel.cluster.roles import FOLLOWER, LEADER

READONLY_MESSAGE = "This node is a follower. Make changes on the leader/VIP."
DEFAULT_FRESHNESS = 20.0


def iso(ts):
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class ReadOnlyGuard:
    """
    For the API gate: mutations on a configured follower get 409
    FOLLOWER_READONLY — also while it owns the VIP (failover), so two
    nodes never take writes.  Endpoints marked ``readonly_exempt`` (cluster
    recovery, login/logout, node-local housekeeping) are not checked.
    """

    def __init__(self, state):
        self._state = state

    async def check(self, call):
        if not self._state.loaded:
            raise ApiError(503, "STARTING", "The node is still starting; try again shortly.",
                           headers={"retry-after": "2"})
        if self._state.role == FOLLOWER:
            raise ApiError(409, "FOLLOWER_READONLY", READONLY_MESSAGE)


class Readiness:
    """
    ok when this node may own the VIP: its DNS answers (cached self-probe)
    and, for a configured follower acting as follower, it synced within the
    freshness window.  A configured leader is always current; a follower in
    failover (owning the VIP) keeps serving what it has.

    A bad role file (``role_file_problem()``: a message, or None) is
    reported in ``roleFileError`` but does not make the node unready: it
    keeps its last good role and serves DNS, and failing the check would
    move the VIP (a DNS gap) over a file keepalived rewrites anyway.
    """

    def __init__(self, state, machine, sync_status, clock, dns_healthy,
                 window=DEFAULT_FRESHNESS, role_file_problem=lambda: None):
        self._state = state
        self._role_file_problem = role_file_problem
        self._machine = machine
        self._sync = sync_status
        self._clock = clock
        self._dns_healthy = dns_healthy
        self.window = window

    def answer(self):
        role = self._machine.effective
        if role is None:
            return {"ok": False, "role": "starting", "reason": "starting"}
        body = {"ok": True, "role": role}
        reasons = []
        if role == FOLLOWER and self._state.role == FOLLOWER:
            body["lastSync"] = iso(self._sync.last_success)
            if not self._sync.fresh(self._clock.seconds(), self.window):
                reason = f"no successful sync in the last {self.window:g} s"
                error = self._sync.last_error
                if self._state.problem:  # cannot sync at all (the secret is unreadable)
                    reason += f" ({self._state.problem})"
                elif error and self._sync.failures:  # say why: the leader is down, bad data, ...
                    reason += f" (last error {error['code']}: {error['message'].rstrip('.')})"
                reasons.append(reason)
        if not self._dns_healthy():
            reasons.append("DNS is not answering")
        problem = self._role_file_problem()
        if problem:
            body["roleFileError"] = problem
        if reasons:
            body["ok"] = False
            body["reason"] = "; ".join(reasons)
        return body

    @property
    def failover(self):
        return self._state.role == FOLLOWER and self._machine.effective == LEADER
