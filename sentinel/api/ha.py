"""
HA (VIP / keepalived) API: the node's HA settings, what the sidecar
detected and reports, and the peers' readiness.

All under /api/cluster/ and ``readonly_exempt``: a follower must be able
to change its own (node-local, never synced) HA settings.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger

from sentinel.api.base import ApiError, endpoint
from sentinel.ha.model import FIELDS, HaError
from sentinel.ha.netinfo import fresh

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


class HaApi:
    """
    state: L{sentinel.ha.state.HaState}.  fetch(url) -> Deferred((status,
    body bytes)) for the peers' readiness (treq in production).
    """

    PEER_TIMEOUT = 2.0

    def __init__(self, state, clock, fetch):
        self._state = state
        self._clock = clock
        self._fetch = fetch

    @endpoint("GET", "/api/cluster/ha/config", tag="cluster", readonly_exempt=True,
              summary="This node's VIP/keepalived settings (the password is never shown)",
              response=CONFIG_SCHEMA)
    async def get_config(self, call):
        settings, sealed = await self._state.load()
        return _config_body(settings, bool(sealed))

    @endpoint("PUT", "/api/cluster/ha/config", tag="cluster", readonly_exempt=True,
              body=PUT_SCHEMA, response=CONFIG_SCHEMA, errors=(400,),
              summary="Set this node's VIP/keepalived settings; the sidecar applies them")
    async def put_config(self, call):
        netinfo = fresh(self._state.netinfo(), self._clock.seconds())
        try:
            settings, password_set, warnings = await self._state.save(call.body, netinfo)
        except HaError as e:
            raise ApiError(400, e.code, e.message,
                           details=[{"field": e.field, "message": e.message}]) from None
        return _config_body(settings, password_set, warnings)

    @endpoint("GET", "/api/cluster/ha/status", tag="cluster", readonly_exempt=True,
              summary="What the keepalived sidecar reports, and the role file")
    async def status(self, call):
        sidecar = self._state.sidecar_status()
        age = None
        if sidecar and isinstance(sidecar.get("updatedAt"), (int, float)):
            age = round(self._clock.seconds() - sidecar["updatedAt"], 1)
        return {"sidecar": sidecar, "sidecarAgeSeconds": age,
                "roleFile": {"path": self._state.config.role_file,
                             "role": self._state.role_file()}}

    @endpoint("GET", "/api/cluster/netinfo", tag="cluster", readonly_exempt=True,
              summary="Interfaces and default route detected by the keepalived sidecar")
    async def netinfo(self, call):
        info = self._state.netinfo()
        if info is None:
            return {"available": False, "interfaces": [], "defaultRoute": None,
                    "suggestedInterface": None,
                    "message": "The keepalived sidecar has not reported yet: is it running "
                               "with host networking and the same data directory?"}
        body = dict(info)
        body["available"] = True
        at = info.get("detectedAt")
        body["ageSeconds"] = round(self._clock.seconds() - at, 1) \
            if isinstance(at, (int, float)) else None
        return body

    @endpoint("GET", "/api/cluster/peer-status", tag="cluster", readonly_exempt=True,
              summary="The other nodes seen on VRRP or configured as unicast peers, "
                      "with their /api/cluster/ready answer")
    async def peer_status(self, call):
        settings, _ = await self._state.load()
        doc = self._state.peers() or {}
        seen = doc.get("peers") if isinstance(doc.get("peers"), dict) else {}
        now = self._clock.seconds()
        addresses = sorted(set(seen) | set(settings.unicast_peers))
        port = self._state.config.http_port
        answers = await defer.gatherResults(
            [defer.ensureDeferred(self._probe(ip, port)) for ip in addresses])
        peers = []
        for ip, ready in zip(addresses, answers):
            vrrp = seen.get(ip)
            if isinstance(vrrp, dict):
                last = vrrp.get("lastSeen")
                vrrp = {"priority": vrrp.get("priority"),
                        "lastAdvertSecondsAgo": round(now - last, 1)
                        if isinstance(last, (int, float)) else None}
            peers.append({"address": ip, "vrrp": vrrp,
                          "unicastPeer": ip in settings.unicast_peers, **ready})
        return {"peers": peers, "listening": bool(doc.get("listening")),
                "passwordMismatch": doc.get("passwordMismatch") or []}

    async def _probe(self, ip, port):
        url = f"http://{ip}:{port}/api/cluster/ready"
        try:
            status, raw = await self._fetch(url, self.PEER_TIMEOUT)
            body = json.loads(raw.decode("utf-8"))
        except Exception as e:  # any failure is the answer
            return {"url": url, "ready": None, "error": f"{type(e).__name__}: {e}"[:200]}
        if not isinstance(body, dict):
            return {"url": url, "ready": None, "error": f"HTTP {status}: not a JSON object"}
        # Only the fields readiness is about: nothing else is passed on.
        ready = {k: body[k] for k in ("ok", "role") if k in body}
        return {"url": url, "ready": ready, "error": None if status == 200 else f"HTTP {status}"}


def treq_fetch(reactor):
    import treq

    async def fetch(url, timeout):
        response = await treq.get(url, timeout=timeout, reactor=reactor, persistent=False)
        body = await treq.content(response)
        return response.code, body

    return lambda url, timeout: defer.ensureDeferred(fetch(url, timeout))
