"""
The signed endpoints followers call on the leader (auth "cluster": HMAC
signature, skew window and replay check done by L{SyncServer.authenticate}
in the gate; every answer is signed back):

    POST /api/cluster/sync/hello          prove the shared secret (join)
    GET  /api/cluster/sync/changes        what changed after a revision (long-poll)
    GET  /api/cluster/sync/blobs/{sha}    one blob's contents
"""

import json
import re

from sentinel.api.base import ApiError, Raw, endpoint
from sentinel.cluster import codec

HELLO_BODY = {
    "type": "object", "required": ["nodeId"],
    "properties": {"nodeId": {"type": "string", "pattern": "^[0-9a-f]{8,64}$"}},
}
CHANGES_QUERY = {
    "since": {"type": "integer", "minimum": 0},
    "history": {"type": "string", "pattern": "^[0-9a-f]{16,64}$"},
    "wait": {"type": "number", "minimum": 0, "maximum": 60},
}
SHA = re.compile(r"^[0-9a-f]{64}$")
SIGNED = (401, 409)


class ClusterSyncApi:
    def __init__(self, server):
        self._server = server

    def _signed(self, call, body, content_type="application/json"):
        call.request.quiet_log = True  # polled continuously; failures are still logged
        headers = self._server.sign(call.request, 200, body)
        return Raw(body, content_type, headers=headers)

    @endpoint("POST", "/api/cluster/sync/hello", auth="cluster", tag="cluster-sync",
              readonly_exempt=True, body=HELLO_BODY, errors=SIGNED,
              summary="Follower joining: proves both sides hold the cluster secret")
    async def hello(self, call):
        self._server.seen(call.request)
        revision = await self._server.current_revision()
        body = json.dumps({"leader": self._server.node_id, "history": self._server.history,
                           "revision": revision}).encode()
        return self._signed(call, body)

    @endpoint("GET", "/api/cluster/sync/changes", auth="cluster", tag="cluster-sync",
              query=CHANGES_QUERY, errors=SIGNED,
              summary="Changes after ?since= for ?history=, waiting up to ?wait= s for one")
    async def changes(self, call):
        since = call.query.get("since", 0)
        history = call.query.get("history", "")
        batch = await self._server.batch(since, history, float(call.query.get("wait", 0)))
        self._server.check_leader()  # stopped leading while waiting
        self._server.seen(call.request, since, history, batch.revision)
        nonce = call.request.cluster_request.nonce
        return self._signed(call, codec.encode(batch, self._server.wire_key, nonce))

    @endpoint("GET", "/api/cluster/sync/blobs/{sha}", auth="cluster", tag="cluster-sync",
              errors=SIGNED + (404,), summary="The contents of one blob (blocklist data)")
    async def blob(self, call, sha):
        if not SHA.match(sha):
            raise ApiError(404, "NOT_FOUND", "No such blob.")
        data = await self._server.blob(sha)
        if data is None:
            raise ApiError(404, "NOT_FOUND", "No such blob.")
        return self._signed(call, data, "application/octet-stream")
