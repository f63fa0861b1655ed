"""
Cluster endpoints (all readonly_exempt, so a follower can be recovered):

    GET  /api/cluster/ready               no auth: may this node own the VIP? 200/503
    GET  /api/cluster/status              admin: roles, sync health, followers seen
    POST /api/cluster/enable-leader       admin: {leaderUrl}
    GET  /api/cluster/join-code           admin, leader (configured and effective): join code
    POST /api/cluster/configure-follower  admin: {joinCode}; proves it with the leader first
    POST /api/cluster/leader-url          admin, follower: point at another leader URL (same cluster)
    POST /api/cluster/leave               admin: back to standalone, keeps the configuration
    POST /api/cluster/resync              admin, follower: next sync is a full one

The signed follower->leader endpoints are in L{sentinel.api.cluster_sync}.
"""

import json
import re

from sentinel.api import cluster_schemas as schemas
from sentinel.api.base import ApiError, Reply, endpoint
from sentinel.cluster import joincode
from sentinel.cluster.client import LeaderConnection
from sentinel.cluster.guard import iso
from sentinel.cluster.joincode import JoinCodeError
from sentinel.cluster.joining import H_JOIN, unwrap_secret
from sentinel.cluster.roles import FOLLOWER, LEADER, STANDALONE, is_failover
from sentinel.cluster.signing import ClusterKeys, new_secret
from sentinel.cluster.status import SyncError, node_message
from sentinel.store.database import StoreUnavailable

JOIN_STATUS = {"INVALID_JOIN_CODE": 400, "JOIN_CODE_EXPIRED": 400, "INVALID_LEADER_URL": 400}
_NODE = re.compile(r"[0-9a-f]{8,64}")
HELLO_STATUS = {"LEADER_UNREACHABLE": 502, "TIMEOUT": 504, "NOT_LEADER": 409, "SELF": 409}
REFUSED = ("BAD_SIGNATURE", "EXPIRED", "UNSIGNED", "REPLAYED", "JOIN_CODE_USED",
           "JOIN_CODE_EXPIRED")


class ClusterApi:
    def __init__(self, *, state, machine, readiness, sync_status, client, server, store,
                 http, clock, role_file, vip=lambda: None, is_local=lambda host: False,
                 join_ttl=joincode.DEFAULT_TTL):
        self._state = state
        self._machine = machine
        self._ready = readiness
        self._sync = sync_status
        self._client = client
        self._server = server
        self._store = store
        self._http = http
        self._clock = clock
        self._role_file = role_file
        self._vip = vip
        self._is_local = is_local
        self._join_ttl = join_ttl

    def _require_loaded(self):
        if not self._state.loaded:
            raise ApiError(503, "STARTING", "The node is still starting; try again shortly.",
                           headers={"retry-after": "2"})

    @endpoint("GET", "/api/cluster/ready", auth="none", tag="cluster", readonly_exempt=True,
              summary="Readiness for keepalived: 200 when this node may own the VIP, else 503",
              response=schemas.READY, errors=(503,))
    async def ready(self, call):
        call.request.quiet_log = True  # asked every second by keepalived
        body = self._ready.answer()
        if body["ok"]:
            return body
        # Also a well-formed error answer: {"error", "message"}.
        return Reply(503, dict(body, error="NOT_READY", message=f"Not ready: {body['reason']}."))

    @endpoint("POST", "/api/cluster/enable-leader", tag="cluster", readonly_exempt=True,
              body=schemas.LEADER_URL_BODY, response=schemas.ENABLE_LEADER, errors=(400,),
              summary="Make this node the leader; followers reach it at leaderUrl (the VIP URL)")
    async def enable_leader(self, call):
        self._require_loaded()
        url = _url_or_400(call.body["leaderUrl"])
        host = _host(url)
        local = [host] if host and self._is_local(host) else []
        warnings = joincode.url_warnings(url, local, await _vip(self._vip))
        await self._state.enable_leader(url, new_secret)
        return {"ok": True, "role": LEADER, "leaderUrl": url, "warnings": warnings}

    @endpoint("GET", "/api/cluster/join-code", tag="cluster", errors=(409,),
              response=schemas.JOIN_CODE,
              summary="A join code for followers (configured leader that is also the "
                      "effective leader, i.e. owns the VIP when HA is on)")
    async def join_code(self, call):
        self._require_loaded()
        m = self._state.membership
        if m.role != LEADER or not m.secret:
            raise ApiError(409, "NOT_LEADER",
                           "Join codes come from the leader: enable leader mode first.")
        if self._machine.effective != LEADER:
            # The user guide: a join code only while leader is enabled AND the
            # node's effective role is leader (it owns the VIP, if HA is on).
            raise ApiError(409, "NOT_LEADER",
                           "This node is the configured leader but does not own the VIP "
                           "right now (the role file says follower): get the join code "
                           "once it is the VIP owner again.")
        code_id, key, expires = await self._server.join_codes.issue(m.secret, self._join_ttl)
        return {"joinCode": joincode.make(m.leader_url, code_id, key, expires),
                "leaderUrl": m.leader_url, "expiresAt": iso(expires)}

    @endpoint("POST", "/api/cluster/configure-follower", tag="cluster", readonly_exempt=True,
              body=schemas.JOIN_BODY, response=schemas.CONFIGURE_FOLLOWER,
              errors=(400, 409, 502, 504),
              summary="Join a cluster as follower with a join code (checked with the leader first)")
    async def configure_follower(self, call):
        self._require_loaded()
        try:
            code = joincode.parse(call.body["joinCode"], self._clock.seconds())
        except JoinCodeError as e:
            raise ApiError(JOIN_STATUS[e.code], e.code, e.message) from None
        secret = await self._join(code)
        hello = await self._hello(code.leader_url, secret)
        await self._state.join(code.leader_url, secret)
        return {
            "ok": True, "role": FOLLOWER, "leaderUrl": code.leader_url,
            "leader": {"nodeId": hello.get("leader"), "revision": hello.get("revision")},
            "message": ("Joined. This node now mirrors the leader's configuration "
                        "(including admin accounts: log in with the leader's credentials) "
                        "and refuses local changes."),
        }

    async def _join(self, code):
        """The cluster secret, from the leader, for a join code (used up)."""
        state = self._state
        keys = ClusterKeys.from_secret(code.key)
        conn = LeaderConnection(self._http, self._clock, state.node_id, code.leader_url, keys)
        body = json.dumps({"nodeId": state.node_id}).encode()
        answer, nonce = await self._signed_call(conn, "/api/cluster/sync/join", body,
                                                {H_JOIN: code.code_id})
        try:
            secret = unwrap_secret(keys, nonce, answer.get("secret"))
        except ValueError:
            raise ApiError(502, "BAD_PAYLOAD", "The leader's answer is not valid.") from None
        if answer.get("leader") == state.node_id:
            raise ApiError(409, "SELF", "The join code's leader URL reaches this node itself.")
        return secret

    async def _signed_call(self, conn, path, body, headers=None):
        try:
            raw, nonce = await conn.call("POST", path, body, timeout=10,
                                         extra_headers=headers)
            answer = json.loads(raw.decode("utf-8"))
        except SyncError as e:
            status = HELLO_STATUS.get(e.code, 400 if e.code in REFUSED else 502)
            raise ApiError(status, e.code, f"Nothing was saved. {e.message}") from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(502, "BAD_PAYLOAD", "The leader's answer is not valid.") from None
        if not isinstance(answer, dict):
            raise ApiError(502, "BAD_PAYLOAD", "The leader's answer is not valid.")
        return answer, nonce

    async def _hello(self, leader_url, secret):
        state = self._state
        conn = LeaderConnection(self._http, self._clock, state.node_id, leader_url,
                                ClusterKeys.from_secret(secret))
        body = json.dumps({"nodeId": state.node_id}).encode()
        hello, _ = await self._signed_call(conn, "/api/cluster/sync/hello", body)
        if not (isinstance(hello, dict) and isinstance(hello.get("leader"), str)
                and _NODE.fullmatch(hello["leader"]) and type(hello.get("revision")) is int
                and hello["revision"] >= 0):
            raise ApiError(502, "BAD_PAYLOAD", "The leader's answer is not valid.")
        if hello.get("leader") == state.node_id:
            raise ApiError(409, "SELF", "The join code's leader URL reaches this node itself.")
        return hello

    @endpoint("POST", "/api/cluster/leader-url", tag="cluster", readonly_exempt=True,
              body=schemas.LEADER_URL_BODY, response=schemas.LEADER_URL_CHANGED,
              errors=(400, 409),
              summary="Follower: use another URL for the same leader (e.g. a new VIP); "
                      "saved even if it cannot be reached now")
    async def leader_url(self, call):
        self._require_loaded()
        m = self._state.membership
        if m.role != FOLLOWER:
            raise ApiError(409, "NOT_FOLLOWER", "Only a follower has a leader URL to change.")
        url = _url_or_400(call.body["leaderUrl"])
        body = {"ok": True, "leaderUrl": url, "reachable": True}
        try:
            await self._hello(url, m.secret)
        except ApiError as e:
            body.update(reachable=False, error={"code": e.code, "message": e.message.replace(
                "Nothing was saved. ", "")})
        await self._state.join(url, m.secret)
        self._client.reconnect()  # not another poll to the old URL
        return body

    @endpoint("POST", "/api/cluster/leave", tag="cluster", readonly_exempt=True,
              body=schemas.EMPTY_BODY, response=schemas.LEFT,
              summary="Leave the cluster: standalone, configuration kept")
    async def leave(self, call):
        self._require_loaded()
        was = self._state.role
        await self._state.leave()
        return {"ok": True, "role": STANDALONE, "was": was}

    @endpoint("POST", "/api/cluster/resync", tag="cluster", readonly_exempt=True,
              body=schemas.EMPTY_BODY, response=schemas.OK, errors=(409,),
              summary="Follower: take a full snapshot from the leader next (even an older one)")
    async def resync(self, call):
        self._require_loaded()
        if self._state.role != FOLLOWER:
            raise ApiError(409, "NOT_FOLLOWER", "Only a follower resyncs.")
        self._client.resync()
        return {"ok": True}

    @endpoint("GET", "/api/cluster/status", tag="cluster", response=schemas.STATUS,
              summary="Cluster status: roles, sync health, followers seen")
    async def status(self, call):
        state, machine, now = self._state, self._machine, self._clock.seconds()
        configured, override = state.role if state.loaded else None, machine.override
        body = {
            "nodeId": state.node_id, "loaded": state.loaded,
            "configuredRole": configured, "effectiveRole": machine.effective,
            "roleOverride": override, "roleFile": self._role_file,
            "runningGroup": machine.active, "switching": machine.active != machine.desired,
            "readOnly": configured == FOLLOWER,
            "failover": is_failover(configured, override),
            "leaderUrl": state.membership.leader_url, "history": state.history,
            "ready": self._ready.answer(), "problem": state.problem,
            "message": node_message(configured, override, self._sync),
        }
        try:
            snap = await self._store.snapshot()
            counts = {}
            for e in snap.entities:
                counts[e.kind] = counts.get(e.kind, 0) + 1
            body["localRevision"], body["counts"] = snap.revision, counts
        except StoreUnavailable:
            body["localRevision"], body["counts"] = None, None
        if configured == FOLLOWER:
            body["sync"] = self._sync_json(now)
            body["leaderRevision"] = self._sync.leader_revision
        if configured == LEADER:
            current = body["localRevision"]
            body["followers"] = [
                _follower_json(f, current, now)
                for f in sorted(self._server.followers.values(), key=lambda f: f["nodeId"])]
        return body

    def _sync_json(self, now):
        s = self._sync
        error = dict(s.last_error, at=iso(s.last_error["at"])) if s.last_error else None
        return {
            "running": s.running, "lastSync": iso(s.last_success),
            "lastSyncAgeSeconds": None if s.last_success is None else round(
                now - s.last_success, 3),
            "lastAttempt": iso(s.last_attempt), "lastError": error,
            "consecutiveFailures": s.failures, "lastSyncDurationMs": s.last_duration_ms,
            "lastSyncBytes": s.last_bytes, "bytesTotal": s.bytes_total, "syncs": s.syncs,
            "applies": s.applies, "leaderNodeId": s.leader_id,
            "lastApply": dict(s.last_apply, at=iso(s.last_apply["at"])) if s.last_apply
            else None,
            "freshnessWindowSeconds": self._ready.window,
        }


def _follower_json(f, current, now):
    out = {"nodeId": f["nodeId"], "address": f.get("address"),
           "lastContact": iso(f.get("lastContact")),
           "lastContactAgeSeconds": round(now - f["lastContact"], 3)
           if f.get("lastContact") else None,
           "revision": f.get("revision"), "sameHistory": f.get("sameHistory")}
    if f.get("revision") is not None and current is not None:
        out["lag"] = max(0, current - f["revision"]) if f.get("sameHistory") else None
    return out


def _url_or_400(text):
    try:
        return joincode.normalize_leader_url(text)
    except JoinCodeError as e:
        raise ApiError(400, e.code, e.message) from None


def _host(url):
    from urllib.parse import urlsplit

    return urlsplit(url).hostname


async def _vip(source):
    """The configured VIP address, or None (never fails: it only shapes warnings)."""
    try:
        vip = source()
        if hasattr(vip, "__await__") or hasattr(vip, "addCallback"):
            from twisted.internet.defer import ensureDeferred

            vip = await (ensureDeferred(vip) if hasattr(vip, "send") else vip)
        return vip if isinstance(vip, str) and vip else None
    except Exception:
        return None
