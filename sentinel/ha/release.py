"""
Handing the VIP over on request (``POST /api/cluster/ha/release``), in the
sidecar.

The daemon checks that a ready peer exists, then writes
``<data-dir>/sentinel/ha/release.json`` (``{"id", "requestedAt",
"notBefore"}``).  The sidecar looks for that file every 0.2 s; on a
request it:

1. removes the file (a request is acted on once), and refuses it unless
   keepalived is MASTER here and the request is fresh (a request older
   than ``REQUEST_TTL`` is from before a sidecar restart: nobody is
   waiting for it any more); else it reports it ``scheduled``;
2. at ``notBefore`` (the daemon asks for a second's delay, so its HTTP
   answer reaches the client before the VIP -- which the client may be
   using -- moves), if still MASTER, writes ``1`` into the release track
   file (``track_file
   sentinel_release``, weight 0): keepalived goes to FAULT at once and
   sends a priority-0 advert, so a ready BACKUP takes the VIP after its
   skew time (about half a second);
3. holds FAULT until an advert from another node (priority > 0) shows
   that it has taken over, plus ``SETTLE`` seconds, or at most
   ``HOLD_MAX`` seconds;
4. writes ``0`` again: keepalived returns to BACKUP and, hearing the new
   holder (``nopreempt``), stays there.  If nobody took the VIP, it takes
   part again and becomes MASTER after the usual master-down interval.
   If writing fails (disk full), it is logged and tried again every
   ``RETRY`` seconds: the node must not stay out of the election.  (At
   step 2, a failed write refuses the request, with the reason.)

``state`` (shown in status.json, read by the API) says where a request is:
``scheduled``, ``releasing``, ``released`` (``to``: the new holder's
address), ``not-taken``, ``refused`` or ``cancelled`` (``reason``).
"""

import json
import os
import re

from twisted.logger import Logger

from sentinel.ha import files
from sentinel.periodic import Guarded

log = Logger()

REQUEST_TTL = 10.0
MAX_DELAY = 10.0  # notBefore at most this far after requestedAt
HOLD_MAX = 4.0
SETTLE = 1.0
RETRY = 1.0  # writing 0 into the track file failed: try again
PENDING = ("scheduled", "releasing")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_request(raw):
    """release.json bytes -> (id, requestedAt, notBefore); ValueError says what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not valid JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    rid, at = doc.get("id"), doc.get("requestedAt")
    if not isinstance(rid, str) or not _ID.fullmatch(rid):
        raise ValueError("id must be 1-64 letters, digits, '-' or '_'")
    not_before = doc.get("notBefore", at)
    for name, value in (("requestedAt", at), ("notBefore", not_before)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number")
    if not at <= not_before <= at + MAX_DELAY:
        raise ValueError(f"notBefore must be 0-{MAX_DELAY:g} s after requestedAt")
    return rid, float(at), float(not_before)


class Releaser:
    """
    on_change(): the state changed (the sidecar writes status.json).
    vrrp_state(): keepalived's state here (or None).  Time comes from
    ``clock`` (a Clock in tests).
    """

    def __init__(self, clock, request_file, track_file, on_change, vrrp_state):
        self._clock = clock
        self.request_file = request_file
        self.track_file = track_file
        self._on_change = on_change
        self._vrrp_state = vrrp_state
        self.state = None  # the last request's progress (status.json "release")
        self.blocked = None  # why requests cannot be received (logged once), or None
        self._timers = []
        self._take_part = Guarded("taking part in the VRRP election again (writing the "
                                  "release track file)", self._write_zero)

    @property
    def active(self):
        return self.state is not None and self.state.get("state") in PENDING

    def reset(self):
        """Not releasing: the track file says 0 (before keepalived starts, and after)."""
        self._cancel_timers()
        files.atomic_write(self.track_file, b"0\n", 0o644)
        if self.active:
            self._finish("cancelled", reason="HA was reconfigured or stopped")

    def discard(self):
        """Remove the request file; a path that cannot be removed (a directory
        in its place: requests cannot be received) is logged once, in one line,
        and reported in ``blocked``.  True if nothing is left in the way."""
        try:
            files.remove_file(self.request_file)
        except OSError as e:
            what = "is a directory" if os.path.isdir(self.request_file) else \
                f"cannot be removed ({e.strerror})"
            problem = (f"{self.request_file} {what}: VIP hand-over requests cannot be "
                       f"received until it is removed")
            if problem != self.blocked:
                log.error("{problem}", problem=problem)
            self.blocked = problem
            return False
        if self.blocked is not None:
            log.info("{path} can be used again: VIP hand-over requests are received",
                     path=self.request_file)
            self.blocked = None
        return True

    def poll(self):
        """Look for a request; schedule it (or refuse it)."""
        try:  # never blocks (a FIFO in its place would hang the sidecar)
            raw = files.read_bytes(self.request_file, 4096)
        except files.FileFormatError as e:
            raw, problem = None, str(e)
        else:
            if raw is None:
                if self.blocked is not None:
                    self.discard()  # says it is usable again
                return
        if not self.discard():
            return  # the same thing in the way at every poll: said once
        if raw is not None:
            try:
                rid, at, not_before = parse_request(raw)
            except ValueError as e:
                log.warn("ignoring {path}: {error}", path=self.request_file, error=str(e))
                return
            problem = self._refusal(at)
            if problem is None:
                return self._schedule(rid, not_before)
            self.state = {"id": rid, "state": "refused", "reason": problem,
                          "at": self._clock.seconds()}
        log.warn("VIP release not done: {problem}", problem=problem)
        self._on_change()

    def _refusal(self, at=None):
        now = self._clock.seconds()
        if at is not None:
            if self.active:
                return "a release is already running"
            if not now - REQUEST_TTL <= at <= now + 5:
                return "the request is stale (made before this sidecar started?)"
        vrrp_state = self._vrrp_state()
        if vrrp_state != "MASTER":
            return f"this node does not hold the VIP (VRRP state {vrrp_state or 'unknown'})"
        return None

    def _schedule(self, rid, not_before):
        now = self._clock.seconds()
        self.state = {"id": rid, "state": "scheduled", "at": now, "notBefore": not_before}
        self._timers.append(self._clock.callLater(max(0.0, not_before - now), self._start))
        self._on_change()

    def _start(self):
        self._timers = []
        now = self._clock.seconds()
        problem = self._refusal()
        if problem is not None:
            log.warn("VIP release not done: {problem}", problem=problem)
            self.state.update(state="refused", reason=problem, finishedAt=now)
            self._on_change()
            return
        try:
            files.atomic_write(self.track_file, b"1\n", 0o644)
        except OSError as e:
            problem = f"cannot write {self.track_file} ({e.strerror})"
            log.warn("VIP release not done: {problem}", problem=problem)
            self.state.update(state="refused", reason=problem, finishedAt=now)
            self._on_change()
            return
        self.state.update(state="releasing", startedAt=now)
        log.info("releasing the VIP on request: leaving the election for up to {hold:g} s "
                 "so a ready peer takes over", hold=HOLD_MAX)
        self._timers.append(self._clock.callLater(HOLD_MAX, self._timeout))
        self._on_change()

    def advert(self, source, priority):
        """Another node (password checked) advertised: a taker, if it has priority."""
        if not self.active or self.state["state"] != "releasing" or priority <= 0 \
                or self.state.get("to"):
            return
        self.state["to"] = source
        self._timers.append(self._clock.callLater(SETTLE, self._taken))

    def _taken(self):
        if self.active:
            log.info("the VIP went to {peer}: taking part again as backup",
                     peer=self.state["to"])
            self._resume("released")

    def _timeout(self):
        if self.active:
            log.warn("no other node took the VIP within {hold:g} s: taking part again "
                     "(this node takes the VIP back)", hold=HOLD_MAX)
            self._resume("not-taken")

    def _resume(self, outcome):
        self._cancel_timers()
        self._take_part()
        if self._take_part.failures:  # still out of the election: try again
            self._timers.append(self._clock.callLater(RETRY, self._resume, outcome))
            return
        self._finish(outcome)

    def _write_zero(self):
        files.atomic_write(self.track_file, b"0\n", 0o644)

    def _finish(self, outcome, **extra):
        now = self._clock.seconds()
        self.state.update(state=outcome, finishedAt=now, **extra)
        if outcome == "not-taken":
            self.state.pop("to", None)
        self._on_change()

    def _cancel_timers(self):
        for call in self._timers:
            if call.active():
                call.cancel()
        self._timers = []


def write_request(path, rid, now, delay=0.0):
    """The daemon's side: ask the sidecar to release in ``delay`` s (0600, atomic)."""
    files.write_json(path, {"id": rid, "requestedAt": now, "notBefore": now + delay}, 0o600)


def request_file(ha_dir):
    return os.path.join(ha_dir, "release.json")
