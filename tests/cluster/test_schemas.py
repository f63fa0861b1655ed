"""
Every answer of every cluster endpoint matches what /api/openapi.json says:
success bodies their declared response schema, other statuses the Error
schema — in every role (standalone, leader, follower, failover, standby).
The schemathesis run (tests/api/test_fuzz.py) checks the same against a
real daemon, but it cannot sign sync requests nor join a cluster; this
test can.
"""

import json
import re
from datetime import datetime

import jsonschema
from twisted.internet.defer import ensureDeferred

from sentinel.api.schemas import ERROR
from sentinel.cluster import joincode, signing
from sentinel.cluster.joining import H_JOIN
from tests.cluster.pair import SyncTestCase
from tests.cluster.support import ADMIN


def _date_time(text):
    if not isinstance(text, str):
        return True
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", text):
        return False
    datetime.fromisoformat(text.replace("Z", "+00:00"))
    return True


FORMATS = jsonschema.FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_date_time)


def validate(schema, value, what):
    errors = list(jsonschema.Draft202012Validator(schema, format_checker=FORMATS)
                  .iter_errors(value))
    if errors:
        raise AssertionError(f"{what}: {errors[0].message} at "
                             f"{list(errors[0].absolute_path)} in {value!r}")


class AnswersMatchSchemas(SyncTestCase):
    async def setUp(self):
        await super().setUp()
        self.specs = [spec for spec, _ in self.leader.site.endpoints
                      if spec.path.startswith("/api/cluster/")]
        self.succeeded = set()

    def spec_for(self, method, path):
        path = path.split("?")[0]
        for spec in self.specs:
            regex = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(spec.path)) + "$"
            if spec.method == method and re.match(regex, path):
                return spec
        raise AssertionError(f"no endpoint {method} {path}")

    def check(self, method, path, status, raw, content_type):
        spec = self.spec_for(method, path)
        what = f"{method} {path} -> {status}"
        if status == spec.status:
            self.assertEqual(content_type.split(";")[0], spec.content_type, what)
            if spec.content_type == "application/json":
                validate(spec.response, json.loads(raw), what)
            self.succeeded.add((spec.method, spec.path))
        else:
            self.assertIn(str(status), _documented(spec), what)
            self.assertEqual(content_type.split(";")[0], "application/json", what)
            validate(ERROR, json.loads(raw), what)
        return json.loads(raw) if content_type.startswith("application/json") else raw

    async def call(self, stub, method, path, body=None, headers=ADMIN):
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        response = await stub.request(method, "http://node" + path, data=data, headers=hdrs)
        raw = await response.content()
        ctype = response.headers.getRawHeaders("content-type", [""])[0]
        return response.code, self.check(method, path, response.code, raw, ctype)

    async def signed(self, method, path, body=b"", keys=None, extra=None):
        headers = signing.sign_request(keys or self.follower.state.keys,
                                       self.follower.state.node_id,
                                       method, path, body, self.clock.seconds())
        headers.update(extra or {})
        if body:
            headers["Content-Type"] = "application/json"
        response = await self.to_leader.request(method, "http://leader" + path,
                                                headers=headers, data=body or None)
        raw = await response.content()
        ctype = response.headers.getRawHeaders("content-type", [""])[0]
        return response.code, self.check(method, path, response.code, raw, ctype)

    async def test_every_cluster_answer_in_every_role(self):
        L, F = self.to_leader, self.to_follower
        # Standalone.
        for stub in (L, F):
            self.assertEqual((await self.call(stub, "GET", "/api/cluster/ready"))[0], 200)
            self.assertEqual((await self.call(stub, "GET", "/api/cluster/status"))[0], 200)
        await self.call(L, "GET", "/api/cluster/join-code")  # 409
        await self.call(L, "POST", "/api/cluster/resync", {})  # 409
        await self.call(L, "POST", "/api/cluster/leader-url", {"leaderUrl": "http://x"})  # 409
        await self.call(L, "POST", "/api/cluster/leave", {})
        await self.call(F, "POST", "/api/cluster/configure-follower", {"joinCode": "garbage"})
        await self.call(L, "POST", "/api/cluster/enable-leader", {"leaderUrl": "ftp://x"})

        # Leader and follower (join() calls the three join endpoints).
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        sha = await self.leader.store.put_blob(b"ads.example\n")
        await self.leader.store.create("blocklist", {"content": {"sha256": sha}})
        await self.join()
        status, body = await self.call(F, "GET", "/api/cluster/ready")
        self.assertEqual((status, body["error"]), (503, "NOT_READY"))  # not synced yet
        await self.sync()
        status, body = await self.call(F, "GET", "/api/cluster/ready")
        self.assertEqual(sorted(body), ["lastSync", "ok", "role"])
        for stub in (L, F):
            await self.call(stub, "GET", "/api/cluster/status")
        status, body = await self.call(L, "GET", "/api/cluster/status")
        self.assertEqual(len(body["followers"]), 1)
        status, body = await self.call(F, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.53:8080"})
        self.assertTrue(body["reachable"])
        self.follower.leader_http = _Refusing()
        status, body = await self.call(F, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.54:8080"})
        self.assertEqual(body["error"]["code"], "LEADER_UNREACHABLE")
        await self.assertFailure(ensureDeferred(self.sync()), Exception)
        self.follower.leader_http = self.to_leader
        await self.call(F, "GET", "/api/cluster/status")  # with lastError
        await self.call(F, "POST", "/api/cluster/resync", {})

        # The signed endpoints, as the follower's client calls them.
        node = self.follower.state.node_id
        await self.signed("POST", "/api/cluster/sync/hello",
                          json.dumps({"nodeId": node}).encode())
        _, body = await self.call(L, "GET", "/api/cluster/join-code")
        code = joincode.parse(body["joinCode"], self.clock.seconds())
        join_keys = signing.ClusterKeys.from_secret(code.key)
        for _ in range(2):  # 200, then 401 JOIN_CODE_USED
            status, body = await self.signed("POST", "/api/cluster/sync/join",
                                             json.dumps({"nodeId": node}).encode(),
                                             keys=join_keys, extra={H_JOIN: code.code_id})
        self.assertEqual((status, body["error"]), (401, "JOIN_CODE_USED"))
        history = self.leader.state.history
        revision = await self.leader.store.revision()
        for since, hist in ((0, "0" * 16), (1, history), (revision, history)):
            path = f"/api/cluster/sync/changes?since={since}&history={hist}&wait=0"
            status, body = await self.signed("GET", path)
            self.assertEqual(status, 200)
        self.assertEqual(body["mode"], "unchanged")
        status, raw = await self.signed("GET", f"/api/cluster/sync/blobs/{sha}")
        self.assertEqual((status, raw), (200, b"ads.example\n"))
        await self.signed("GET", "/api/cluster/sync/blobs/" + "0" * 64)  # 404
        await self.call(L, "GET", "/api/cluster/sync/changes")  # 401: unsigned

        # Failover (follower owns the VIP) and standby (leader does not).
        self.follower.machine.set_override("leader")
        self.leader.machine.set_override("follower")
        status, body = await self.call(F, "GET", "/api/cluster/status")
        self.assertTrue(body["failover"])
        status, body = await self.call(L, "GET", "/api/cluster/status")
        self.assertIn("standby", body["message"])
        await self.call(L, "GET", "/api/cluster/join-code")  # 409 NOT_LEADER: standby
        await self.signed("GET", "/api/cluster/sync/changes?wait=0")  # 409 NOT_LEADER
        await self.call(F, "POST", "/api/cluster/leave", {})

        self.assertEqual({(s.method, s.path) for s in self.specs} - self.succeeded, set(),
                         "cluster endpoints whose success answer was not checked")


def _documented(spec):
    from sentinel.api.openapi import operation

    return operation(spec, {})["responses"]


class _Refusing:
    def request(self, *a, **kw):
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        return fail(ConnectionRefusedError("Connection refused"))
