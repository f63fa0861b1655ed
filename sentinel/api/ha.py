"""
HA (VIP / keepalived) API: the node's HA settings, what the sidecar
detected and reports, the peers' readiness, and handing the VIP to a
ready peer (``POST /api/cluster/ha/release``, see L{sentinel.ha.release}).

All under /api/cluster/ and ``readonly_exempt``: a follower must be able
to change its own (node-local, never synced) HA settings, and a follower
holding the VIP after a failover must be able to hand it back.
"""

import ipaddress
import json
import os

from twisted.internet import defer, task
from twisted.logger import Logger

from sentinel.api import ha_schemas
from sentinel.api.base import ApiError, Reply, endpoint
from sentinel.ha import release as release_mod
from sentinel.ha.model import FIELDS, HaError
from sentinel.ha.netinfo import fresh
from sentinel.ha.state import PublishError

log = Logger()

_DESCRIPTIONS = {
    "enabled": "boolean: run keepalived for this node",
    "vip": "string: the shared IPv4 address, optionally with prefix (192.168.1.53/24)",
    "interface": "string: LAN interface (default: the one with the default route)",
    "virtualRouterId": "integer 1-255, the same on every node (default 53)",
    "priority": "integer 1-254, different per node; higher wins an election (default 100)",
    "advertInterval": "integer seconds 1-255 (default 1)",
    "mode": "'multicast' (default) or 'unicast'",
    "unicastPeers": "array of the other nodes' IPv4 addresses (unicast mode)",
    "sourceIp": "string or null: this node's address to send adverts from",
}

PUT_SCHEMA = {
    "type": "object",
    "description": "Types and ranges are checked by the HA validator, which answers "
                   "400 with a specific HA_* code and the field.",
    "properties": {
        **{name: {"description": text} for name, text in _DESCRIPTIONS.items()},
        "password": {"description": "string (1-8 characters) to set, null to clear, "
                                    "absent to keep: the shared VRRP password"},
    },
}

CONFIG_SCHEMA = {
    "type": "object",
    "required": list(FIELDS) + ["passwordSet"],
    "properties": {
        "enabled": {"type": "boolean"},
        "vip": {"type": ["string", "null"]},
        "interface": {"type": ["string", "null"]},
        "virtualRouterId": {"type": "integer"},
        "priority": {"type": "integer"},
        "advertInterval": {"type": "integer"},
        "mode": {"type": "string", "enum": ["multicast", "unicast"]},
        "unicastPeers": {"type": "array", "items": {"type": "string"}},
        "sourceIp": {"type": ["string", "null"]},
        "passwordSet": {"type": "boolean"},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


def _config_body(settings, password_set, warnings=None):
    body = settings.to_json()
    body["passwordSet"] = password_set
    if warnings is not None:
        body["warnings"] = warnings
    return body


RELEASE_SCHEMA = {
    "type": "object", "required": ["id", "state", "inSeconds", "readyPeers", "message"],
    "properties": {"id": {"type": "string"}, "state": {"type": "string"},
                   "inSeconds": {"type": "number"},
                   "readyPeers": {"type": "array", "items": {"type": "string"}},
                   "message": {"type": "string"}},
}


class HaApi:
    """
    state: L{sentinel.ha.state.HaState}.  fetch(url) -> Deferred((status,
    body bytes)) for the peers' readiness (treq in production).
    known_peers() -> addresses of other nodes known from elsewhere (the
    followers a leader serves): a BACKUP never sends VRRP adverts, so the
    VIP holder may not have heard it.
    """

    PEER_TIMEOUT = 2.0
    RELEASE_ACK = 3.0  # the sidecar looks for requests every 0.2 s
    RELEASE_DELAY = 1.0  # between this answer and the VIP moving
    POLL = 0.1

    def __init__(self, state, clock, fetch, known_peers=lambda: ()):
        self._state = state
        self._clock = clock
        self._fetch = fetch
        self._known_peers = known_peers

    @endpoint("GET", "/api/cluster/ha/config", tag="cluster", readonly_exempt=True,
              summary="This node's VIP/keepalived settings (the password is never shown)",
              response=CONFIG_SCHEMA)
    async def get_config(self, call):
        settings, sealed = await self._state.load()
        return _config_body(settings, bool(sealed))

    @endpoint("PUT", "/api/cluster/ha/config", tag="cluster", readonly_exempt=True,
              body=PUT_SCHEMA, response=CONFIG_SCHEMA, errors=(400, 500),
              summary="Set this node's VIP/keepalived settings; the sidecar applies them")
    async def put_config(self, call):
        netinfo = fresh(self._state.netinfo(), self._clock.seconds())
        try:
            settings, password_set, warnings = await self._state.save(call.body, netinfo)
        except HaError as e:
            raise ApiError(400, e.code, e.message,
                           details=[{"field": e.field, "message": e.message}]) from None
        except PublishError as e:
            raise ApiError(500, "HA_CONFIG_NOT_WRITTEN", str(e)) from None
        return _config_body(settings, password_set, warnings)

    @endpoint("GET", "/api/cluster/ha/status", tag="cluster", readonly_exempt=True,
              summary="What the keepalived sidecar reports, and the role file",
              response=ha_schemas.HA_STATUS_SCHEMA)
    async def status(self, call):
        sidecar = self._state.sidecar_status()
        if not isinstance(sidecar, dict):
            sidecar = None
        age = None
        if sidecar and isinstance(sidecar.get("updatedAt"), (int, float)):
            age = round(self._clock.seconds() - sidecar["updatedAt"], 1)
        return {"sidecar": sidecar, "sidecarAgeSeconds": age,
                "roleFile": {"path": self._state.config.role_file,
                             "role": self._state.role_file(),
                             "mismatch": self._state.role_file_mismatch()}}

    @endpoint("GET", "/api/cluster/netinfo", tag="cluster", readonly_exempt=True,
              summary="Interfaces and default route detected by the keepalived sidecar",
              response=ha_schemas.NETINFO_SCHEMA)
    async def netinfo(self, call):
        info = self._state.netinfo()
        if not isinstance(info, dict):
            return {"available": False, "interfaces": [], "defaultRoute": None,
                    "suggestedInterface": None,
                    "message": "The keepalived sidecar has not reported yet: is it running "
                               "with host networking and the same data directory?"}
        return ha_schemas.netinfo(info, self._clock.seconds())

    @endpoint("GET", "/api/cluster/peer-status", tag="cluster", readonly_exempt=True,
              summary="The other nodes seen on VRRP or configured as unicast peers, "
                      "with their /api/cluster/ready answer",
              response=ha_schemas.PEER_STATUS_SCHEMA)
    async def peer_status(self, call):
        settings, _ = await self._state.load()
        doc = self._state.peers()
        if not isinstance(doc, dict):
            doc = {}
        mismatch = doc.get("passwordMismatch")
        return {"peers": await self._peers(settings, doc),
                "listening": doc.get("listening") is True,
                "passwordMismatch": [m for m in mismatch if isinstance(m, str)]
                if isinstance(mismatch, list) else []}

    async def _peers(self, settings, doc):
        seen = doc.get("peers") if isinstance(doc.get("peers"), dict) else {}
        now = self._clock.seconds()
        members = self._members(settings)
        addresses = sorted(set(seen) | set(settings.unicast_peers) | members)
        port = self._state.config.http_port
        answers = await defer.gatherResults(
            [defer.ensureDeferred(self._probe(ip, port)) for ip in addresses])
        peers = []
        for ip, ready in zip(addresses, answers):
            vrrp = seen.get(ip)
            if isinstance(vrrp, dict):
                last = vrrp.get("lastSeen")
                priority = vrrp.get("priority")
                vrrp = {"priority": priority if type(priority) is int else None,
                        "lastAdvertSecondsAgo": round(now - last, 1)
                        if isinstance(last, (int, float)) else None}
            else:
                vrrp = None
            peers.append({"address": ip, "vrrp": vrrp,
                          "unicastPeer": ip in settings.unicast_peers,
                          "clusterMember": ip in members, **ready})
        return peers

    def _members(self, settings):
        """IPv4 addresses of other cluster nodes (not this node's, not the VIP)."""
        own = {settings.vip_address}
        for iface in (self._state.netinfo() or {}).get("interfaces") or ():
            if isinstance(iface, dict):
                own.update(str(a).split("/")[0] for a in iface.get("addresses") or ())
        out = set()
        try:
            candidates = list(self._known_peers() or ())
        except Exception:
            log.failure("listing the cluster's members failed")
            candidates = []
        for address in candidates:
            try:
                ip = ipaddress.ip_address(str(address).removeprefix("::ffff:"))
            except ValueError:
                continue
            if ip.version == 4 and not ip.is_loopback and not ip.is_unspecified \
                    and str(ip) not in own:
                out.add(str(ip))
        return out

    async def _probe(self, ip, port):
        url = f"http://{ip}:{port}/api/cluster/ready"
        try:
            status, raw = await self._fetch(url, self.PEER_TIMEOUT)
            body = json.loads(raw.decode("utf-8"))
        except Exception as e:  # any failure is the answer
            return {"url": url, "ready": None, "error": f"{type(e).__name__}: {e}"[:200]}
        if not isinstance(body, dict):
            return {"url": url, "ready": None, "error": f"HTTP {status}: not a JSON object"}
        # Only the fields readiness is about, well typed: nothing else is passed on.
        ready = ha_schemas.ready(body)
        return {"url": url, "ready": ready, "error": None if status == 200 else f"HTTP {status}"}

    # -- handing the VIP over --------------------------------------------------------

    @endpoint("POST", "/api/cluster/ha/release", tag="cluster", readonly_exempt=True,
              body={"type": "object", "additionalProperties": False, "properties": {}},
              response=RELEASE_SCHEMA, status=202, errors=(409, 503),
              summary="Hand the VIP to a ready peer (on the VIP holder, only if a peer is "
                      "ready); it moves a second after this answer")
    async def release(self, call):
        settings, _ = await self._state.load()
        if not settings.enabled:
            raise ApiError(409, "HA_NOT_ENABLED", "VIP failover is not enabled on this node.")
        sidecar = self._state.sidecar_status() or {}
        if sidecar.get("vrrpState") != "MASTER" or self._state.role_file() != "leader":
            raise ApiError(409, "NOT_VIP_HOLDER",
                           "This node does not hold the VIP: release it on the node that "
                           "does (the one the VIP URL reaches).")
        if (sidecar.get("release") or {}).get("state") in release_mod.PENDING:
            raise ApiError(409, "RELEASE_IN_PROGRESS", "The VIP is being handed over already.")
        peers = await self._peers(settings, self._state.peers() or {})
        ready = [p["address"] for p in peers if (p.get("ready") or {}).get("ok") is True]
        if not ready:
            raise ApiError(
                409, "NO_READY_PEER",
                "No other node is ready to take the VIP, so this node keeps it (DNS keeps "
                "answering). Check the other node: its /api/cluster/ready must answer ok.",
                details=[{"address": p["address"], "ready": p.get("ready"),
                          "error": p.get("error")} for p in peers])
        rid = os.urandom(8).hex()
        # The delay lets this answer reach the client first: it may be talking
        # to us through the VIP, which is about to move.
        try:
            self._state.request_release(rid, self.RELEASE_DELAY)
        except OSError as e:
            raise ApiError(503, "RELEASE_NOT_WRITTEN",
                           f"The request for the keepalived sidecar cannot be written "
                           f"({self._state.release_file}: {e.strerror}); nothing changed, "
                           f"this node keeps the VIP.") from None
        state = await self._wait_release(rid, self.RELEASE_ACK)
        if state is None:
            self._state.cancel_release()
            raise ApiError(503, "SIDECAR_NOT_RESPONDING",
                           "The keepalived sidecar did not take the request; nothing changed.")
        if state["state"] == "refused":
            raise ApiError(409, "RELEASE_REFUSED", f"The sidecar refused: {state.get('reason')}.")
        log.info("VIP hand-over requested ({id}); ready peers: {peers}", id=rid,
                 peers=", ".join(ready))
        return Reply(202, {
            "id": rid, "state": state["state"], "inSeconds": self.RELEASE_DELAY,
            "readyPeers": ready,
            "message": (f"The VIP moves to {' or '.join(ready)} in about a second, with a "
                        f"DNS gap of about half a second. Through the VIP you will then "
                        f"reach the new holder; this node stays backup."),
        })

    async def _wait_release(self, rid, timeout):
        """The sidecar's state for request rid once it has seen it, or None after timeout."""
        deadline = self._clock.seconds() + timeout
        while True:
            state = (self._state.sidecar_status() or {}).get("release")
            if isinstance(state, dict) and state.get("id") == rid:
                return state
            if self._clock.seconds() >= deadline:
                return None
            await task.deferLater(self._clock, self.POLL, lambda: None)


def treq_fetch(reactor):
    import treq

    from sentinel.quiet import QuietHTTPConnectionPool

    async def fetch(url, timeout):
        response = await treq.get(url, timeout=timeout, reactor=reactor,
                                  pool=QuietHTTPConnectionPool(reactor, persistent=False))
        body = await treq.content(response)
        return response.code, body

    return lambda url, timeout: defer.ensureDeferred(fetch(url, timeout))
