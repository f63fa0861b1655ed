"""
JSON schemas of the cluster endpoints (requests and answers), used to
validate requests and to describe them in /api/openapi.json.  Answers are
described exactly (``additionalProperties: false``): a new field must be
declared here, and tests check every answer against these.
"""

from sentinel.api.schemas import nullable, obj
from sentinel.cluster import joincode
from sentinel.cluster.codec import MODES

ROLE = {"type": "string", "enum": ["standalone", "leader", "follower"]}
NODE_ID = {"type": "string", "pattern": "^[0-9a-f]{8,64}$"}
HISTORY = {"type": "string", "pattern": "^[0-9a-f]{16,64}$"}
REVISION = {"type": "integer", "minimum": 0}
COUNT = {"type": "integer", "minimum": 0}
SECONDS = {"type": "number", "minimum": 0}
TIME = {"type": "string", "format": "date-time"}
ERROR_CODE = obj({"code": {"type": "string"}, "message": {"type": "string"}},
                 required=["code", "message"])

# -- requests ------------------------------------------------------------------

LEADER_URL = {
    "type": "string", "minLength": 1, "maxLength": joincode.MAX_URL,
    "pattern": joincode.LEADER_URL_PATTERN,
    "description": f"The URL followers reach the leader at, normally the VIP URL: "
                   f"{joincode.LEADER_URL_RULE}.",
    "x-error": f"must be {joincode.LEADER_URL_RULE}",
}
LEADER_URL_BODY = obj({"leaderUrl": LEADER_URL}, required=["leaderUrl"])
JOIN_BODY = obj({"joinCode": {
    "type": "string", "minLength": 1, "maxLength": joincode.MAX_CODE, "writeOnly": True,
    "description": "The join code from the leader (GET /api/cluster/join-code); whitespace "
                   "from copying is ignored. What a schema cannot check is checked by the "
                   "server, with specific 400 codes: the code's format and check digits "
                   "(INVALID_JOIN_CODE), its expiry (JOIN_CODE_EXPIRED) and the leader URL "
                   "inside (INVALID_LEADER_URL); then the leader itself must accept the "
                   "code, once and before it expires (400 JOIN_CODE_USED, "
                   "JOIN_CODE_EXPIRED, BAD_SIGNATURE; 502/504 if unreachable)."}},
    required=["joinCode"])
EMPTY_BODY = obj({})

# -- answers ---------------------------------------------------------------------

READY = obj({
    "ok": {"type": "boolean"},
    "role": {"type": "string", "enum": ["standalone", "leader", "follower", "starting"],
             "description": "the effective role (a follower in failover is 'leader')"},
    "lastSync": nullable(TIME),
    "reason": {"type": "string"},
    "error": {"const": "NOT_READY"},
    "message": {"type": "string"},
    "roleFileError": {"type": "string", "description": (
        "the role file cannot be used (e.g. 'role file /data/sentinel/cluster_role says "
        "\'lead\'; expected exactly ...'): the node keeps its last good role and this "
        "does not by itself make it unready")},
}, required=["ok", "role"], description=(
    "200 {ok:true}; 503 when not ready, with ok:false, reason, and error NOT_READY + message "
    "(so it is also an Error). A follower adds lastSync."))

ENABLE_LEADER = obj({
    "ok": {"const": True}, "role": {"const": "leader"}, "leaderUrl": {"type": "string"},
    "warnings": {"type": "array", "items": {"type": "string"}},
}, required=["ok", "role", "leaderUrl", "warnings"])

JOIN_CODE = obj({
    "joinCode": {"type": "string", "pattern": r"^SJ2\.[A-Za-z0-9_-]+\.[0-9a-f]{8}$"},
    "leaderUrl": {"type": "string"}, "expiresAt": TIME,
}, required=["joinCode", "leaderUrl", "expiresAt"])

CONFIGURE_FOLLOWER = obj({
    "ok": {"const": True}, "role": {"const": "follower"}, "leaderUrl": {"type": "string"},
    "leader": obj({"nodeId": NODE_ID, "revision": REVISION}, required=["nodeId", "revision"]),
    "message": {"type": "string"},
}, required=["ok", "role", "leaderUrl", "leader", "message"])

LEADER_URL_CHANGED = obj({
    "ok": {"const": True}, "leaderUrl": {"type": "string"}, "reachable": {"type": "boolean"},
    "error": ERROR_CODE,
}, required=["ok", "leaderUrl", "reachable"])

LEFT = obj({"ok": {"const": True}, "role": {"const": "standalone"}, "was": ROLE},
           required=["ok", "role", "was"])
OK = obj({"ok": {"const": True}}, required=["ok"])

_KIND_COUNTS = {"type": "object", "additionalProperties": COUNT}
LAST_APPLY = obj({
    "at": TIME, "mode": {"type": "string", "enum": ["changes", "full"]},
    "counts": {"type": "object", "additionalProperties": obj(
        {"put": COUNT, "deleted": COUNT}, required=["put", "deleted"])},
    "localRevision": nullable(REVISION), "blobsAdded": COUNT, "blobsRemoved": COUNT,
    "idsReserved": COUNT, "localSessionsEnded": COUNT,
}, required=["at", "mode", "counts", "localRevision", "blobsAdded", "blobsRemoved",
             "idsReserved", "localSessionsEnded"])
SYNC = obj({
    "running": {"type": "boolean"}, "lastSync": nullable(TIME),
    "lastSyncAgeSeconds": nullable(SECONDS), "lastAttempt": nullable(TIME),
    "lastError": nullable(obj({"code": {"type": "string"}, "message": {"type": "string"},
                               "at": TIME}, required=["code", "message", "at"])),
    "consecutiveFailures": COUNT, "lastSyncDurationMs": nullable(SECONDS),
    "lastSyncBytes": nullable(COUNT), "bytesTotal": COUNT, "syncs": COUNT, "applies": COUNT,
    "leaderNodeId": nullable(NODE_ID), "lastApply": nullable(LAST_APPLY),
    "freshnessWindowSeconds": SECONDS,
}, required=["running", "lastSync", "lastSyncAgeSeconds", "lastAttempt", "lastError",
             "consecutiveFailures", "lastSyncDurationMs", "lastSyncBytes", "bytesTotal",
             "syncs", "applies", "leaderNodeId", "lastApply", "freshnessWindowSeconds"])
FOLLOWER_SEEN = obj({
    "nodeId": NODE_ID, "address": nullable({"type": "string"}), "lastContact": nullable(TIME),
    "lastContactAgeSeconds": nullable(SECONDS), "revision": nullable(REVISION),
    "sameHistory": nullable({"type": "boolean"}),
    "lag": nullable(dict(COUNT, description="revisions behind; null while it resyncs")),
}, required=["nodeId", "address", "lastContact", "lastContactAgeSeconds", "revision",
             "sameHistory"])
STATUS = obj({
    "nodeId": nullable(NODE_ID), "loaded": {"type": "boolean"},
    "configuredRole": nullable(ROLE), "effectiveRole": nullable(ROLE),
    "roleOverride": nullable({"type": "string", "enum": ["leader", "follower"]}),
    "roleFile": nullable({"type": "string"}),
    "runningGroup": nullable({"type": "string", "enum": ["leader_only", "follower_only"]}),
    "switching": {"type": "boolean"}, "readOnly": {"type": "boolean"},
    "failover": {"type": "boolean", "description": (
        "a configured follower owns the VIP: it serves DNS with its last configuration "
        "and stays read-only; message says 'failover active: leader unreachable'")},
    "leaderUrl": nullable({"type": "string"}), "history": nullable(HISTORY),
    "ready": READY, "problem": nullable({"type": "string"}),
    "message": nullable({"type": "string"}),
    "localRevision": nullable(REVISION), "counts": nullable(_KIND_COUNTS),
    "sync": dict(SYNC, description="configured followers only"),
    "leaderRevision": nullable(REVISION),
    "followers": {"type": "array", "items": FOLLOWER_SEEN,
                  "description": "configured leaders only: the followers seen"},
}, required=["nodeId", "loaded", "configuredRole", "effectiveRole", "roleOverride",
             "roleFile", "runningGroup", "switching", "readOnly", "failover", "leaderUrl",
             "history", "ready", "problem", "message", "localRevision", "counts"])

# -- the signed sync endpoints -----------------------------------------------------

HELLO = obj({"leader": NODE_ID, "history": HISTORY, "revision": REVISION},
            required=["leader", "history", "revision"])
JOINED = obj({"leader": NODE_ID, "history": HISTORY, "revision": REVISION,
               "secret": {"type": "string", "contentEncoding": "base64",
                          "description": "the cluster secret, AES-256-GCM under the join "
                                         "code's key; see docs/CLUSTER.md"}},
              required=["leader", "history", "revision", "secret"])
CHANGES = obj({
    "v": {"const": 1}, "mode": {"type": "string", "enum": list(MODES)},
    "leader": NODE_ID, "history": HISTORY, "revision": REVISION, "since": REVISION,
    "sealed": {"type": "string", "contentEncoding": "base64",
               "description": "AES-256-GCM sealed entities, blobs and key marks "
                              "(absent when unchanged); see docs/CLUSTER.md"},
}, required=["v", "mode", "leader", "history", "revision", "since"])
