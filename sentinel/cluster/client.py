"""
The follower's sync client (in the follower-only service group).

One loop: ask the leader for what changed after the revision this node
holds (a long-poll: the leader answers at once when something changed,
else "unchanged" after ``wait`` seconds), verify the signed answer,
download missing blob contents (checked against their sha256), and apply
everything in ONE store transaction.  Errors are recorded with a code for
the status page and retried with backoff (0.5 s doubling to 5 s); they
never affect DNS, which keeps the configuration it has.
"""

import json
import re

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.internet.defer import TimeoutError as DeadlinePassed
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.logger import Logger
from twisted.web.client import ResponseFailed

from sentinel import httpbody
from sentinel.store.blobhash import sha256_hex
from sentinel.store.database import StoreUnavailable
from sentinel.cluster import codec, signing
from sentinel.cluster.plan import (MARKER, ApplyError, check_order, remember_behind,
                                   valid_marker)
from sentinel.cluster.roles import FOLLOWER
from sentinel.cluster.status import SyncError, SyncStatus

log = Logger()

WAIT = 5.0  # long-poll duration asked of the leader
SLACK = 10.0  # extra time before the client gives up on an answer
MAX_BODY = 256 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024  # of a non-200 answer: an error message, no more
ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)
IDLE_RECHECK = 1.0


class LeaderConnection:
    """Signed requests to the leader with a treq-like HTTP client."""

    def __init__(self, http, clock, node_id, base_url, keys):
        self._http = http
        self._clock = clock
        self._node = node_id
        self._base = base_url.rstrip("/")
        self._keys = keys

    async def call(self, method, path, body=b"", timeout=SLACK, extra_headers=None):
        """(body, request nonce) of a verified 200 answer; SyncError otherwise."""
        headers = signing.sign_request(
            self._keys, self._node, method, path, body, self._clock.seconds())
        headers.update(extra_headers or {})
        if body:
            headers["Content-Type"] = "application/json"
        # One deadline for connecting, the answer and its body.
        d = ensureDeferred(self._exchange(method, path, body, headers))
        d.addTimeout(timeout, self._clock)
        try:
            status, got, raw, responder = await d
        except DeadlinePassed:
            raise SyncError("TIMEOUT", f"The leader did not answer within {timeout:g} s.")
        except (ConnectError, DNSLookupError, ResponseFailed, OSError) as e:
            raise SyncError("LEADER_UNREACHABLE", f"Cannot reach the leader: {_why(e)}.")
        if status != 200:
            raise _error_from(status, raw, responder, self._node)
        nonce = headers[signing.H_NONCE]
        try:
            signing.verify_response(self._keys, got, nonce, status, raw, self._clock.seconds())
        except signing.SignatureError as e:
            raise SyncError(e.code, e.message) from None
        return raw, nonce

    async def _exchange(self, method, path, body, headers):
        # Never follow a redirect: sync endpoints do not redirect, and the
        # signed request must not be sent on to wherever a Location points.
        response = await self._http.request(
            method, self._base + path, headers=headers, data=body or None,
            allow_redirects=False)
        if response.code == 200:
            raw = await _collect(response, MAX_BODY)
        else:  # an error message: its start is enough
            raw = await _collect(response, MAX_ERROR_BODY, cut=True)
        got = {h: _header(response, h) for h in (signing.H_TIMESTAMP, signing.H_SIGNATURE)}
        return response.code, got, raw, _header(response, signing.H_NODE)


def _why(e):
    reasons = getattr(e, "reasons", None)  # ResponseFailed & co. wrap failures
    if reasons:
        text = "; ".join(_reason(r) for r in reasons)
    else:
        text = str(e) or type(e).__name__
    return text.rstrip(".")  # the caller ends the sentence


def _reason(failure):
    if failure.type.__name__ == "_DataLoss":  # twisted.web's, for a body cut short
        return "the answer was cut off"
    return (failure.getErrorMessage() or failure.type.__name__).rstrip(".")


def _header(response, name):
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values and isinstance(values[0], bytes) else (
        values[0] if values else None)


def _collect(response, limit, cut=False):
    """The body of ``response``: L{sentinel.httpbody.collect}, BAD_PAYLOAD when too large."""
    return httpbody.collect(response, limit, _too_large, cut)


def _too_large():
    return SyncError("BAD_PAYLOAD", "The leader's answer is too large.")


def _error_from(status, raw, responder, me):
    # Not signed (anyone on the way can answer this): an error code of the
    # documented form or none, a message of at most 500 printable characters.
    try:
        body = json.loads(raw.decode("utf-8"))
        code, message = body["error"], body["message"]
        if not (isinstance(code, str) and ERROR_CODE.fullmatch(code)
                and isinstance(message, str)):
            raise ValueError("not an error answer")
        message = "".join(c if c.isprintable() else " " for c in message[:500])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return SyncError(f"HTTP_{status}", f"The leader answered HTTP {status}.")
    if code == "NOT_LEADER" and responder and responder == me:
        return SyncError("SELF", "The leader URL reaches this node itself (it owns the VIP): "
                                 "failover active, leader unreachable.")
    if code == "NOT_FOUND" and status == 404:
        return SyncError("NOT_LEADER", "The leader URL does not reach a Sentinel leader.")
    if code in ("STORE_UNAVAILABLE", "STARTING"):
        code = "LEADER_" + code
    return SyncError(code, f"The leader answered {status}: {message}")


class SyncClient(Service):
    def __init__(self, state, store, applier, http, clock, status=None, wait=WAIT,
                 drop_connections=lambda: None):
        self._state = state
        self._store = store
        self._applier = applier
        self._http = http
        self._drop_connections = drop_connections  # closes the kept (idle) connections
        self._clock = clock
        self.status = status or SyncStatus()
        self.wait = wait
        self.force_next = False
        self._marker = None
        self._marker_epoch = None
        self._inflight = None
        self._timer = None
        self._stopped = False
        self._cancelled = False  # we cancelled the sync in flight ourselves

    # -- service -------------------------------------------------------------

    def startService(self):
        super().startService()
        self._stopped = False
        self.status.running = True
        self._schedule(0)

    def stopService(self):
        super().stopService()
        self._stopped = True
        self.status.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._cancel()

    def _cancel(self):
        if self._inflight is not None:
            self._cancelled = True
            self._inflight.cancel()

    def resync(self):
        """Next sync takes a full snapshot and may go back in time."""
        self.force_next = True
        self._cancel()  # the loop goes on at once

    def reconnect(self):
        """
        The leader URL changed, or the VIP came to or left this node: the
        kept connections and a poll in flight may lead to where the VIP was
        (a dead end: a poll there hangs until its timeout), so drop them and
        sync again at once, on new connections.
        """
        self._drop_connections()
        if self._inflight is not None:
            self._cancel()  # the loop goes on at once
        elif self._timer is not None and self._timer.active():
            self._timer.reset(0)

    def _schedule(self, delay):
        if self.running:
            self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self):
        state = self._state
        if not state.loaded or state.role != FOLLOWER or state.keys is None:
            self.status.idle = True
            return self._schedule(IDLE_RECHECK)
        self.status.idle = False
        d = self._inflight = ensureDeferred(self.sync_once())
        d.addCallbacks(self._succeeded, self._failed)

    def _succeeded(self, _):
        self._inflight = None
        self._cancelled = False
        self.status.failures = 0
        self._schedule(0)

    def _failed(self, failure):
        self._inflight = None
        if self._cancelled or failure.check(CancelledError):
            self._cancelled = False
            return self._schedule(0)
        unexpected, before = False, (self.status.last_error or {}).get("code")
        if failure.check(SyncError):
            error = failure.value
        elif failure.check(StoreUnavailable):
            error = SyncError("STORE_UNAVAILABLE", "The local database is not reachable.")
        else:
            unexpected = True
            error = SyncError("INTERNAL_ERROR", "Unexpected error; see the log.")
        self.status.failed(error, self._clock.seconds())
        # One line for a run of failures with one code (and every 20th
        # retry), not one per retry.
        failures = self.status.failures
        if failures == 1 or failures % 20 == 0 or error.code != before:
            if unexpected:
                log.failure("cluster: sync failed", failure)
            else:
                log.warn("cluster: sync failed: {code}: {msg}", code=error.code,
                         msg=error.message)
        self._schedule(BACKOFF[min(self.status.failures, len(BACKOFF)) - 1])

    # -- one sync ------------------------------------------------------------

    async def _held_marker(self):
        if self._marker_epoch != self._state.epoch:
            self._marker = valid_marker(await self._store.get_local(MARKER))
            self._marker_epoch = self._state.epoch
        return self._marker

    async def sync_once(self):
        state, clock = self._state, self._clock
        epoch, force = state.epoch, self.force_next
        self.status.last_attempt = clock.seconds()
        conn = LeaderConnection(self._http, clock, state.node_id,
                                state.membership.leader_url, state.keys)
        marker = await self._held_marker()
        since, history = (0, "0" * 16) if force or not marker else (
            marker["revision"], marker["history"])
        path = f"/api/cluster/sync/changes?since={since}&history={history}&wait={self.wait:g}"
        raw, nonce = await conn.call("GET", path, timeout=self.wait + SLACK)
        started = clock.seconds()
        try:
            batch = codec.decode(raw, state.keys.wire, nonce)
        except codec.CodecError as e:
            raise SyncError("BAD_PAYLOAD", f"Bad sync payload: {e}") from None
        if batch.leader == state.node_id:
            raise SyncError("SELF", "The leader URL reaches this node itself.")
        try:
            check_order(marker, batch, force)
        except ApplyError as e:
            await self._refused(e, batch, epoch)
        applied = None
        if batch.mode != "unchanged":
            fetched = await self._fetch_blobs(conn, batch)
            try:
                applied = await self._store.transact(
                    self._applier.apply, batch, fetched, force,
                    lambda: state.epoch == epoch and not self._stopped)
            except ApplyError as e:
                if e.code == "ABORTED":  # membership changed or stopping: not an error
                    raise CancelledError() from None
                await self._refused(e, batch, epoch)
            self._marker = {"history": batch.history, "revision": batch.revision,
                            "leader": batch.leader}
            if force:
                self.force_next = False
            if applied.changed:
                log.info("cluster: applied {mode} sync to leader revision {rev}: {counts}",
                         mode=batch.mode, rev=batch.revision, counts=applied.counts)
        self.status.succeeded(batch, applied, len(raw), clock.seconds(),
                              (clock.seconds() - started) * 1000)
        return applied

    async def _refused(self, error, batch, epoch):
        """Raise ``error`` as a SyncError; a leader that went back in time is
        remembered in the sync position first (L{remember_behind})."""
        if error.code == "LEADER_BEHIND":
            await self._store.transact(
                remember_behind, batch,
                lambda: self._state.epoch == epoch and not self._stopped)
            self._marker_epoch = None  # read the position again
        raise SyncError(error.code, error.message) from None

    async def _fetch_blobs(self, conn, batch):
        if not batch.blobs:
            return {}
        have = await self._store.read(lambda ctx: ctx.blob_shas())
        fetched = {}
        for sha in batch.blobs:
            if sha in have:
                continue
            data, _ = await conn.call("GET", f"/api/cluster/sync/blobs/{sha}", timeout=120)
            if await sha256_hex(data) != sha:  # large contents: in a thread
                raise SyncError("BAD_BLOB", f"Blob {sha[:12]}… does not match its checksum.")
            fetched[sha] = data
            self.status.bytes_total += len(data)
        return fetched
