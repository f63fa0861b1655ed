"""
The leader side of sync: authenticates follower requests (for the API
gate), builds batches from the store, holds long-polls until the
revision moves, and remembers which followers it has seen.

It only answers while this node is the configured leader AND its
leader-only services run (L{SyncServerService} sets ``serving``); anything
else gets 409 NOT_LEADER, with this node's id in a header so a follower
whose leader URL reaches itself (it owns the VIP) can say so.  The
signature is checked first: a caller that does not hold the cluster secret
gets 401 whatever this node's role, and learns nothing about it.
"""

import os

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from sentinel.api.base import ApiError, Principal
from sentinel.crypto import DecryptError
from sentinel.cluster import signing
from sentinel.cluster.joining import H_JOIN, JoinCodes, fingerprint, valid_id
from sentinel.cluster.codec import Batch, WireEntity, blob_refs
from sentinel.cluster.plan import synced
from sentinel.cluster.roles import LEADER
from sentinel.periodic import looping_call

log = Logger()

MAX_WAIT = 30.0
# Verifies nothing: what a node without a cluster secret checks signatures
# with, so every request fails exactly like one signed with a wrong secret.
_NO_KEYS = signing.ClusterKeys.from_secret(os.urandom(signing.SECRET_SIZE))


def not_leader(node_id, why="This node is not the cluster leader."):
    return ApiError(409, "NOT_LEADER", why, headers={signing.H_NODE: node_id or ""})


def _verify(keys, request, now):
    """signing.verify_request on a twisted request (its body is read and rewound)."""
    request.content.seek(0)
    body = request.content.read()
    request.content.seek(0)
    headers = {h: request.getHeader(h) for h in (
        signing.H_TIMESTAMP, signing.H_NONCE, signing.H_NODE, signing.H_SIGNATURE)}
    return signing.verify_request(keys, headers, request.method.decode("ascii", "replace"),
                                  request.uri.decode("ascii", "replace"), body, now)


class SyncServer:
    def __init__(self, store, state, secrets, clock):
        self._store = store
        self._state = state
        self._secrets = secrets
        self._clock = clock
        self.join_codes = JoinCodes(store, state.box, clock)
        self.join_auth = _JoinAuthenticator(self)
        self.serving = False
        self.followers = {}  # node id -> dict (see seen())
        self._waiters = []
        store.subscribe(self._revision_changed)

    # -- admission ------------------------------------------------------------

    def check_leader(self):
        state = self._state
        if not state.loaded or state.role != LEADER or state.keys is None:
            raise not_leader(state.node_id)
        if not self.serving:
            raise not_leader(state.node_id, "This node is the configured leader but does not "
                             "own the VIP right now (role file says follower).")

    async def authenticate(self, request):
        """
        The Gate authenticator for auth="cluster" endpoints: 503 STARTING
        until the membership is loaded, then 401 unless the
        request is signed with this node's cluster secret (any role), then
        409 NOT_LEADER unless this node serves sync, then 401 REPLAYED for
        a nonce seen before.  Nonces are only remembered by a serving
        leader: a replayed request to any other node gets NOT_LEADER again,
        which its first answer already said.
        """
        state = self._state
        if not state.loaded:  # restarting: not "bad signature", which says "join again"
            raise ApiError(503, "STARTING", "The node is still starting; try again shortly.",
                           headers={"retry-after": "2"})
        keys = state.keys if state.keys is not None else _NO_KEYS
        try:
            signed = _verify(keys, request, self._clock.seconds())
        except signing.SignatureError as e:
            log.warn("cluster: rejected sync request from {addr}: {code}",
                     addr=_address(request), code=e.code)
            raise ApiError(401, e.code, e.message) from None
        self.check_leader()
        if not await self._store.remember_nonce(
                f"{signed.node_id}:{signed.nonce}", signed.timestamp + signing.NONCE_TTL):
            log.warn("cluster: replayed sync request from {addr}", addr=_address(request))
            raise ApiError(401, "REPLAYED", "This request was already used (replay).")
        request.cluster_request = signed
        return Principal(username=f"node:{signed.node_id}", method="cluster")

    async def authenticate_join(self, request):
        """
        The Gate authenticator "cluster-join" (POST /api/cluster/sync/join):
        a request signed with the join key of a code this leader issued
        (``X-Sentinel-Join``: its id).  401 UNSIGNED / BAD_SIGNATURE /
        EXPIRED (clock skew) as for sync requests; 409 NOT_LEADER unless
        this node serves sync (the code is kept); 401 JOIN_CODE_USED for a
        code this leader does not know (used already, never issued here,
        or issued before it left or re-created its secret) and 401
        JOIN_CODE_EXPIRED past its expiry.  A code passes exactly once:
        it is deleted in the same step.
        """
        code_id = request.getHeader(H_JOIN)
        found = await self.join_codes.lookup(code_id) if valid_id(code_id) else None
        keys = signing.ClusterKeys.from_secret(found[0]) if found else _NO_KEYS
        used = ApiError(401, "JOIN_CODE_USED",
                        "This join code was used already or is not valid on this leader any "
                        "more (it left or re-created its cluster secret): load a new one.")
        now = self._clock.seconds()
        try:
            signed = _verify(keys, request, now)
        except signing.SignatureError as e:
            if found is None and e.code == "BAD_SIGNATURE":
                e = used
            else:
                e = ApiError(401, e.code, e.message)
            log.warn("cluster: rejected join request from {addr}: {code}",
                     addr=_address(request), code=e.code)
            raise e from None
        self.check_leader()
        _, expires, cluster = found
        if cluster != fingerprint(self._state.membership.secret):
            raise used
        if not await self.join_codes.consume(code_id):
            raise used
        if now > expires:
            raise ApiError(401, "JOIN_CODE_EXPIRED",
                           "The join code has expired; load a new one on the leader.")
        log.info("cluster: join code used by node {node} from {addr}",
                 node=signed.node_id, addr=_address(request))
        request.cluster_request = signed
        request.cluster_keys = keys
        return Principal(username=f"node:{signed.node_id}", method="cluster")

    @property
    def secret(self):
        return self._state.membership.secret

    def sign(self, request, status, body):
        signed = request.cluster_request
        keys = getattr(request, "cluster_keys", None) or self._state.keys
        return signing.sign_response(keys, signed.nonce, status, body, self._clock.seconds())

    # -- followers seen ----------------------------------------------------------

    def seen(self, request, since=None, history=None, revision=None):
        node = request.cluster_request.node_id
        entry = self.followers.setdefault(node, {"nodeId": node})
        entry.update(address=_address(request), lastContact=self._clock.seconds())
        if since is not None:
            # revision: what the follower says it holds (confirmed); sent:
            # the revision of the answer it is getting now.
            entry.update(revision=since, sameHistory=history == self._state.history,
                         sent=revision)

    # -- batches -----------------------------------------------------------------

    async def batch(self, since, history, wait=0.0):
        """The answer for a follower at (history, since); may wait for changes."""
        batch = await self._store.read(self._build, since, history)
        if batch.mode == "unchanged" and wait > 0:
            await self._wait(min(wait, MAX_WAIT), since)
            if self.serving:
                batch = await self._store.read(self._build, since, history)
        return batch

    async def _build(self, ctx, since, history):
        mine = self._state.history
        current = await ctx.current_revision()
        leader = self._state.node_id
        if history == mine and since == current:
            return Batch("unchanged", leader, mine, current, current)
        have = await ctx.blob_shas()
        marks = {}
        if history == mine and since < current:
            found = await ctx.changes_since(since)
            current, mode = found.revision, "changes"
        else:
            found = await ctx.snapshot()
            current, mode, since = found.revision, "full", 0
            marks = await ctx.key_marks()
        entities, blobs = [], set()
        for e in found.entities:
            if not synced(e.kind, e.key):
                continue
            data = e.data
            if e.kind == "secret" and data is not None:
                try:
                    data = {"value": self._secrets.unseal(e.key, data)}
                except (DecryptError, KeyError, TypeError, ValueError):
                    log.warn("cluster: secret {name} cannot be unsealed here; not sent",
                             name=e.key)
                    continue
            elif data is not None:
                blobs |= blob_refs(data, have)
            entities.append(WireEntity(e.kind, e.key, e.revision, data))
        return Batch(mode, leader, mine, current, since, tuple(entities), tuple(sorted(blobs)),
                     marks)

    def blob(self, sha):
        return self._store.get_blob(sha)

    def current_revision(self):
        return self._store.revision()

    @property
    def node_id(self):
        return self._state.node_id

    @property
    def history(self):
        return self._state.history

    @property
    def wire_key(self):
        return self._state.keys.wire

    # -- long-poll -----------------------------------------------------------------

    def _wait(self, seconds, since):
        d = Deferred(lambda _: None)
        entry = [d, since, None]
        self._waiters.append(entry)

        def timeout():
            self._release(entry)

        entry[2] = self._clock.callLater(seconds, timeout)
        return d

    def _release(self, entry):
        if entry in self._waiters:
            self._waiters.remove(entry)
        d, _, call = entry
        if call is not None and call.active():
            call.cancel()
        if not d.called:
            d.callback(None)

    def _revision_changed(self, revision, _changed):
        for entry in list(self._waiters):
            if revision > entry[1]:
                self._release(entry)

    def release_all(self):
        for entry in list(self._waiters):
            self._release(entry)


class _JoinAuthenticator:
    """The "cluster-join" authenticator of the gate (see authenticate_join)."""

    def __init__(self, server):
        self._server = server

    def authenticate(self, request):
        return self._server.authenticate_join(request)


def _address(request):
    addr = request.getClientAddress()
    return getattr(addr, "host", str(addr))


class SyncServerService(Service):
    """In leader_only: lets the server answer, and prunes expired nonces."""

    def __init__(self, server, store, clock):
        self._server = server
        self._store = store
        self._clock = clock
        self._prune = None

    def startService(self):
        super().startService()
        self._server.serving = True
        self._prune = looping_call("cluster: pruning expired nonces", self._prune_nonces,
                                   self._clock)
        self._prune.start(60, now=True)

    def _prune_nonces(self):
        d = self._store.prune_nonces(self._clock.seconds())
        d.addErrback(lambda f: log.warn("cluster: could not prune nonces: {e}",
                                        e=f.getErrorMessage()))
        return None

    def stopService(self):
        super().stopService()
        self._server.serving = False
        self._server.release_all()  # pending long-polls answer NOT_LEADER now
        if self._prune is not None and self._prune.running:
            self._prune.stop()
