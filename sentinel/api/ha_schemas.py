"""
Response schemas of the HA read endpoints (netinfo, peer status, sidecar
status), and the functions that shape what the sidecar wrote on disk into
them: those files are input like any other, so only well-typed fields are
passed on.
"""

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}

INTERFACE = {
    "type": "object",
    "required": ["name", "up", "loopback", "mac", "addresses"],
    "properties": {
        "name": {"type": "string"},
        "up": {"type": "boolean"},
        "loopback": {"type": "boolean"},
        "mac": _STRING_OR_NULL,
        "addresses": {"type": "array", "items": {"type": "string"},
                      "description": "address/prefix"},
    },
}

NETINFO_SCHEMA = {
    "type": "object",
    "required": ["available", "interfaces", "defaultRoute", "suggestedInterface"],
    "properties": {
        "available": {"type": "boolean", "description": "the sidecar has reported"},
        "interfaces": {"type": "array", "items": INTERFACE},
        "defaultRoute": {
            "oneOf": [{"type": "null"}, {
                "type": "object", "required": ["interface", "gateway"],
                "properties": {"interface": {"type": "string"}, "gateway": _STRING_OR_NULL}}],
        },
        "suggestedInterface": _STRING_OR_NULL,
        "detectedAt": {"type": "number"},
        "ageSeconds": _NUMBER_OR_NULL,
        "message": {"type": "string"},
        "error": {"type": "string"},
    },
}

PEER = {
    "type": "object",
    "required": ["address", "vrrp", "unicastPeer", "clusterMember", "url", "ready", "error"],
    "properties": {
        "address": {"type": "string"},
        "vrrp": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["priority", "lastAdvertSecondsAgo"],
            "properties": {"priority": {"type": ["integer", "null"]},
                           "lastAdvertSecondsAgo": _NUMBER_OR_NULL}}]},
        "unicastPeer": {"type": "boolean"},
        "clusterMember": {"type": "boolean"},
        "url": {"type": "string"},
        "ready": {"oneOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": False,
            "properties": {"ok": {"type": "boolean"}, "role": {"type": "string"}}}],
            "description": "the peer's /api/cluster/ready answer (ok and role only)"},
        "error": _STRING_OR_NULL,
    },
}

PEER_STATUS_SCHEMA = {
    "type": "object",
    "required": ["peers", "listening", "passwordMismatch"],
    "properties": {
        "peers": {"type": "array", "items": PEER},
        "listening": {"type": "boolean",
                      "description": "the sidecar is listening to VRRP adverts"},
        "passwordMismatch": {"type": "array", "items": {"type": "string"},
                             "description": "addresses heard with another VRRP password"},
    },
}

HA_STATUS_SCHEMA = {
    "type": "object",
    "required": ["sidecar", "sidecarAgeSeconds", "roleFile"],
    "properties": {
        "sidecar": {"type": ["object", "null"],
                    "description": "what the sidecar last wrote to status.json"},
        "sidecarAgeSeconds": _NUMBER_OR_NULL,
        "roleFile": {"type": "object", "required": ["path", "role", "mismatch"],
                     "properties": {
                         "path": {"type": "string"}, "role": _STRING_OR_NULL,
                         "mismatch": {**_STRING_OR_NULL, "description": (
                             "the sidecar writes the role file somewhere else than this "
                             "daemon reads it (HA enabled): what is wrong and how to fix "
                             "it; also in /api/health problems.haRoleFile")}}},
    },
}


def _typed(value, kind, default=None):
    return value if isinstance(value, kind) and not (kind is int and isinstance(value, bool)) \
        else default


def interfaces(raw):
    out = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        addresses = item.get("addresses")
        out.append({
            "name": item["name"],
            "up": _typed(item.get("up"), bool, False),
            "loopback": _typed(item.get("loopback"), bool, False),
            "mac": _typed(item.get("mac"), str),
            "addresses": [a for a in addresses if isinstance(a, str)]
            if isinstance(addresses, list) else [],
        })
    return out


def netinfo(info, now):
    """The netinfo answer from what the sidecar wrote (a dict)."""
    route = info.get("defaultRoute")
    if not (isinstance(route, dict) and isinstance(route.get("interface"), str)):
        route = None
    else:
        route = {"interface": route["interface"], "gateway": _typed(route.get("gateway"), str)}
    body = {
        "available": True,
        "interfaces": interfaces(info.get("interfaces")),
        "defaultRoute": route,
        "suggestedInterface": _typed(info.get("suggestedInterface"), str),
    }
    at = info.get("detectedAt")
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        body["detectedAt"] = at
        body["ageSeconds"] = round(now - at, 1)
    else:
        body["ageSeconds"] = None
    if isinstance(info.get("error"), str):
        body["error"] = info["error"]
    return body


def ready(answer):
    """The fields of a peer's /ready answer that readiness is about, well typed."""
    if not isinstance(answer, dict):
        return None
    out = {}
    if isinstance(answer.get("ok"), bool):
        out["ok"] = answer["ok"]
    if isinstance(answer.get("role"), str):
        out["role"] = answer["role"][:32]
    return out
