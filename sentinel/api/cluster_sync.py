"""
The signed endpoints followers call on the leader (auth "cluster": HMAC
signature, skew window and replay check done by L{SyncServer.authenticate}
in the gate; every answer is signed back):

    POST /api/cluster/sync/join           trade a join code for the cluster secret
                                          (signed with the code's join key, once)
    POST /api/cluster/sync/hello          prove the shared secret (join)
    GET  /api/cluster/sync/changes        what changed after a revision (long-poll)
    GET  /api/cluster/sync/blobs/{sha}    one blob's contents
"""

import json
import re

from twisted.internet.threads import deferToThread

from sentinel.api import cluster_schemas as schemas
from sentinel.api.base import ApiError, Raw, endpoint
from sentinel.cluster import codec
from sentinel.cluster.joining import wrap_secret

HELLO_BODY = {
    "type": "object", "required": ["nodeId"],
    "properties": {"nodeId": schemas.NODE_ID},
}
CHANGES_QUERY = {
    "since": {"type": "integer", "minimum": 0,
              "description": "the leader revision the follower holds (default 0)"},
    "history": dict(schemas.HISTORY, description="the history it belongs to (other or "
                    "absent: a full snapshot)"),
    "wait": {"type": "number", "minimum": 0, "maximum": 60,
             "description": "seconds to hold the answer until something changes (max 30 "
                            "used)"},
}
SHA_PARAM = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
SHA = re.compile(SHA_PARAM["pattern"])
SIGNED = (401, 409)
INLINE_ENTITIES = 256  # a batch with more entities is encoded in a thread


class ClusterSyncApi:
    def __init__(self, server):
        self._server = server

    def _signed(self, call, body, content_type="application/json"):
        call.request.quiet_log = True  # polled continuously; failures are still logged
        headers = self._server.sign(call.request, 200, body)
        return Raw(body, content_type, headers=headers)

    @endpoint("POST", "/api/cluster/sync/join", auth="cluster-join", tag="cluster-sync",
              readonly_exempt=True, body=HELLO_BODY, response=schemas.JOINED, errors=SIGNED,
              summary="Follower joining with a join code (once): the cluster secret, "
                      "encrypted under the code's join key")
    async def join(self, call):
        self._server.seen(call.request)
        revision = await self._server.current_revision()
        nonce = call.request.cluster_request.nonce
        body = json.dumps({
            "leader": self._server.node_id, "history": self._server.history,
            "revision": revision,
            "secret": wrap_secret(call.request.cluster_keys, nonce, self._server.secret),
        }).encode()
        return self._signed(call, body)

    @endpoint("POST", "/api/cluster/sync/hello", auth="cluster", tag="cluster-sync",
              readonly_exempt=True, body=HELLO_BODY, response=schemas.HELLO, errors=SIGNED,
              summary="Follower joining: proves both sides hold the cluster secret")
    async def hello(self, call):
        self._server.seen(call.request)
        revision = await self._server.current_revision()
        body = json.dumps({"leader": self._server.node_id, "history": self._server.history,
                           "revision": revision}).encode()
        return self._signed(call, body)

    @endpoint("GET", "/api/cluster/sync/changes", auth="cluster", tag="cluster-sync",
              query=CHANGES_QUERY, response=schemas.CHANGES, errors=SIGNED,
              summary="Changes after ?since= for ?history=, waiting up to ?wait= s for one")
    async def changes(self, call):
        since = call.query.get("since", 0)
        history = call.query.get("history", "")
        batch = await self._server.batch(since, history, float(call.query.get("wait", 0)))
        self._server.check_leader()  # stopped leading while waiting
        self._server.seen(call.request, since, history, batch.revision)
        nonce = call.request.cluster_request.nonce
        if len(batch.entities) > INLINE_ENTITIES:
            # A full snapshot (50,000 rules: ~7 MB): encoded and sealed in a
            # worker thread, a member at a time, so DNS is answered meanwhile.
            body = await deferToThread(codec.encode, batch, self._server.wire_key, nonce)
        else:
            body = codec.encode(batch, self._server.wire_key, nonce)
        return self._signed(call, body)

    @endpoint("GET", "/api/cluster/sync/blobs/{sha}", auth="cluster", tag="cluster-sync",
              params={"sha": SHA_PARAM}, content_type="application/octet-stream",
              errors=SIGNED + (404,), summary="The contents of one blob (blocklist data)")
    async def blob(self, call, sha):
        if not SHA.match(sha):
            raise ApiError(404, "NOT_FOUND", "No such blob.")
        data = await self._server.blob(sha)
        if data is None:
            raise ApiError(404, "NOT_FOUND", "No such blob.")
        return self._signed(call, data, "application/octet-stream")
