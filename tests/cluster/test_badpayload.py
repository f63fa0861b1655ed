"""
A follower given bad data by a leader that holds the secret (a buggy or
newer leader, a corrupted answer re-signed by a proxy that has the key):
the signature is fine, the content is not.  Nothing is applied, the
follower keeps its last good configuration, the error has a code in the
status and /api/cluster/ready says why it is not ready (docs/CLUSTER.md,
"Failure modes").  Tampering without the secret is tests/cluster/test_sync.py.
"""

import base64
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.web.resource import Resource

from sentinel.cluster import client as client_module
from sentinel.cluster import codec, signing
from sentinel.cluster.status import SyncError
from tests.cluster.pair import SyncTestCase


class SignedLeader(Resource):
    """Answers every sync request with ``body(nonce)``, properly signed."""

    isLeaf = True

    def __init__(self, keys, clock, body):
        super().__init__()
        self._keys, self._clock, self._body = keys, clock, body

    def render(self, request):
        nonce = request.getHeader(signing.H_NONCE)
        body = self._body(nonce)
        for name, value in signing.sign_response(self._keys, nonce, 200, body,
                                                 self._clock.seconds()).items():
            request.setHeader(name, value)
        request.setHeader("content-type", "application/json")
        return body


class BadPayloadTests(SyncTestCase):
    async def setUp(self):
        await super().setUp()
        await self.join()
        self.rule = await self.leader.store.create("rule", {"pattern": "kept.example",
                                                            "action": "block"})
        await self.sync()  # the last good configuration
        self.held = self.follower.client._marker
        self.keys = self.follower.state.keys

    def envelope(self, nonce, inner=None, **fields):
        env = {"v": 1, "mode": "changes", "leader": self.held["leader"],
               "history": self.held["history"], "revision": self.held["revision"] + 1,
               "since": self.held["revision"]}
        env.update(fields)
        if inner is not None:
            batch = codec.Batch(env["mode"], env["leader"], env["history"], env["revision"],
                                env["since"])
            n = os.urandom(12)
            sealed = n + AESGCM(self.keys.wire).encrypt(n, inner, codec._aad(nonce, batch))
            env["sealed"] = base64.b64encode(sealed).decode()
        return json.dumps(env).encode()

    async def fails_with(self, body):
        self.follower.client._marker_epoch = None  # read the held position again
        self.follower.leader_http = self.pump.add(StubTreq(
            SignedLeader(self.keys, self.clock, body)))
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        rules = await self.follower.store.list("rule")
        self.assertEqual([(r.key, r.data) for r in rules],
                         [(self.rule.key, self.rule.data)])  # nothing applied, nothing lost
        return e

    async def test_bad_content_in_a_valid_envelope_applies_nothing(self):
        entity = lambda *item: json.dumps({"entities": [list(item)], "blobs": []}).encode()  # noqa
        cases = [
            (lambda n: b"\x00\xff not json", "BAD_PAYLOAD"),
            (lambda n: b"[1, 2, 3]", "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, revision="7"), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, v=2), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=b"{not json"), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=b'"a string"'), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=entity("rule", 5, 1, {})), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=entity("Bad Kind", "1", 1, {})), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=entity("rule", "1", "x", {})), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=json.dumps(
                {"entities": [], "blobs": ["not-a-sha"]}).encode()), "BAD_PAYLOAD"),
            (lambda n: self.envelope(n, inner=json.dumps(
                {"entities": [], "blobs": [], "marks": {"rule": -1}}).encode()), "BAD_PAYLOAD"),
            # changes that do not start at the follower's revision
            (lambda n: self.envelope(n, inner=entity("rule", "9", 1, {"pattern": "x"}),
                                     since=0), "OUT_OF_ORDER"),
            # A revision going backwards on the same history (a restored leader);
            # last: it is remembered until a resync (tests/cluster/test_rollback.py).
            (lambda n: self.envelope(n, inner=entity("rule", "9", 1, {"pattern": "x"}),
                                     revision=self.held["revision"] - 1, since=0),
             "LEADER_BEHIND"),
        ]
        for body, code in cases:
            e = await self.fails_with(body)
            self.assertEqual(e.code, code, e.message)

    async def test_oversized_answer_is_refused_while_reading(self):
        self.patch(client_module, "MAX_BODY", 4096)
        e = await self.fails_with(lambda n: self.envelope(n, inner=b" " * 8192))
        self.assertEqual((e.code, e.message), ("BAD_PAYLOAD", "The leader's answer is too large."))

    async def test_readiness_and_status_say_why(self):
        client = self.follower.client
        self.follower.leader_http = self.pump.add(StubTreq(
            SignedLeader(self.keys, self.clock, lambda n: self.envelope(n, inner=b"{"))))
        client.running = True
        self.addCleanup(setattr, client, "running", False)
        self.addCleanup(lambda: [c.cancel() for c in self.clock.getDelayedCalls()])
        try:
            await self.sync()
        except SyncError:
            from twisted.python.failure import Failure

            client._failed(Failure())
        self.clock.advance(21)  # past the freshness window
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body["ok"]), (503, False))
        self.assertIn("no successful sync in the last 20 s (last error BAD_PAYLOAD: Bad sync "
                      "payload:", body["reason"])
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertEqual(body["sync"]["lastError"]["code"], "BAD_PAYLOAD")
        self.assertEqual(len(await self.follower.store.list("rule")), 1)


class BadSignedRequestTests(SyncTestCase):
    """The other direction: a member (it holds the secret) asks the leader
    something malformed.  A clear 400, nothing stored, the leader keeps
    serving the others."""

    async def setUp(self):
        await super().setUp()
        await self.join()
        self.keys = self.follower.state.keys

    async def signed(self, method, path, body=b""):
        headers = signing.sign_request(self.keys, self.follower.state.node_id, method, path,
                                       body, self.clock.seconds())
        if body:
            headers["Content-Type"] = "application/json"
        response = await self.to_leader.request(method, "http://leader" + path,
                                                headers=headers, data=body or None)
        return response.code, json.loads(await response.content())

    async def test_malformed_queries_and_bodies(self):
        history = self.leader.state.history
        for query in ("since=-1", "since=abc", f"since=1e9999&history={history}",
                      "history=zz", "history=" + "g" * 16, "wait=-1", "wait=1e12",
                      "wait=nan"):
            status, body = await self.signed(
                "GET", f"/api/cluster/sync/changes?{query}")
            self.assertEqual((status, body["error"]), (400, "VALIDATION_ERROR"), query)
        for raw in (b"{not json", b"[]", b'{"nodeId": 5}', b'{"nodeId": "' + b"a" * 5000 + b'"}',
                    b"\xff\xfe"):
            status, body = await self.signed("POST", "/api/cluster/sync/hello", raw)
            self.assertEqual(status, 400, raw)
        status, body = await self.signed("GET", "/api/cluster/sync/blobs/" + "z" * 64)
        self.assertIn(status, (400, 404))
        # Still serving: a good poll answers (and nothing above stored a nonce
        # that could make it a replay).
        applied = await self.sync()
        self.assertEqual(applied.mode, "full")
