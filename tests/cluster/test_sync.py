"""
Sync between two in-memory nodes: the follower's real client (treq
StubTreq) against the leader's real resource (gate, signed endpoints),
real stores, a Clock for time.
"""

import json

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from sentinel.api.base import Reply, endpoint
from sentinel.cluster import signing
from sentinel.cluster.status import SyncError
from tests.cluster.support import ADMIN, ClusterNode, Pump, live, open_store


class Mutations:
    """An area with a mutating route, to see the guard at work."""

    @endpoint("POST", "/api/things", body={"type": "object"}, summary="x")
    async def create(self, call):
        return Reply(201, {"ok": True})

    @endpoint("POST", "/api/auth/logout", body={"type": "object"}, readonly_exempt=True)
    async def logout(self, call):
        return {"ok": True}


class SyncTestCase(TestCase):
    async def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.pump = Pump(self)
        self.leader = await ClusterNode(await open_store(self), self.clock,
                                        areas=[Mutations()]).start()
        self.follower = await ClusterNode(await open_store(self), self.clock,
                                          areas=[Mutations()]).start()
        self.to_leader = self.pump.add(StubTreq(self.leader.resource))
        self.to_follower = self.pump.add(StubTreq(self.follower.resource))
        self.follower.leader_http = self.to_leader
        self.leader.leader_http = self.to_leader

    async def call(self, stub, method, path, body=None, headers=ADMIN):
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        response = await stub.request(method, "http://node" + path, data=data, headers=hdrs)
        raw = await response.content()
        return response.code, (json.loads(raw) if raw else None)

    async def join(self):
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://198.18.0.53:8080"})
        self.assertEqual(status, 200, body)
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.assertEqual(status, 200, body)
        code = body["joinCode"]
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": code})
        self.assertEqual(status, 200, body)
        return code

    async def sync(self):
        return await self.follower.client.sync_once()


class JoinTests(SyncTestCase):
    async def test_join_then_follow(self):
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        await self.join()
        self.assertEqual(self.follower.state.role, "follower")
        self.assertEqual(self.follower.machine.effective, "follower")
        applied = await self.sync()
        self.assertEqual(applied.mode, "full")
        self.assertEqual(await live(self.follower), await live(self.leader))
        await self.leader.store.create("rule", {"pattern": "more.example"})
        self.assertEqual((await self.sync()).mode, "changes")
        self.assertEqual(await live(self.follower), await live(self.leader))

    async def test_join_code_needs_leader(self):
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.assertEqual((status, body["error"]), (409, "NOT_LEADER"))

    async def test_join_code_needs_admin(self):
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code",
                                       headers={})
        self.assertEqual(status, 401)

    async def test_enable_leader_validates_and_warns(self):
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "192.168.1.53"})
        self.assertEqual((status, body["error"]), (400, "INVALID_LEADER_URL"))
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://127.0.0.1:8080"})
        self.assertEqual(status, 200)
        self.assertIn("loopback", body["warnings"][0])

    async def test_enable_leader_twice_keeps_secret(self):
        code = await self.join()
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        await self.sync()  # the follower is still accepted
        self.assertIsNotNone(code)

    async def test_expired_code(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.clock.advance(3601)
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower",
                                       {"joinCode": body["joinCode"]})
        self.assertEqual((status, body["error"]), (400, "JOIN_CODE_EXPIRED"))
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_garbage_code(self):
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": "hello"})
        self.assertEqual((status, body["error"]), (400, "INVALID_JOIN_CODE"))

    async def test_secret_checked_before_saving(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        code = body["joinCode"]
        # The leader leaves and is enabled again: a new secret, old codes fail.
        await self.call(self.to_leader, "POST", "/api/cluster/leave", {})
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": code})
        self.assertEqual((status, body["error"]), (400, "BAD_SIGNATURE"))
        self.assertIn("Nothing was saved", body["message"])
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_unreachable_leader_reported_nothing_saved(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")

        class Refusing:
            def request(self, *a, **kw):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError("Connection refused"))

        self.follower.leader_http = Refusing()
        status, result = await self.call(self.to_follower, "POST",
                                         "/api/cluster/configure-follower",
                                         {"joinCode": body["joinCode"]})
        self.assertEqual((status, result["error"]), (502, "LEADER_UNREACHABLE"))
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_code_reaching_itself_refused(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        # The leader pastes its own code: the URL reaches itself.
        status, result = await self.call(self.to_leader, "POST",
                                         "/api/cluster/configure-follower",
                                         {"joinCode": body["joinCode"]})
        self.assertEqual((status, result["error"]), (409, "SELF"))
        self.assertEqual(self.leader.state.role, "leader")

    async def test_follower_leader_url_change_saved_even_if_unreachable(self):
        await self.join()
        await self.sync()

        class Refusing:
            def request(self, *a, **kw):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError("Connection refused"))

        self.follower.leader_http = Refusing()
        status, body = await self.call(self.to_follower, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.99:8080"})
        self.assertEqual((status, body["reachable"], body["error"]["code"]),
                         (200, False, "LEADER_UNREACHABLE"))
        self.assertEqual(self.follower.state.membership.leader_url, "http://198.18.0.99:8080")
        self.assertEqual(self.follower.state.role, "follower")
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        self.assertEqual(e.code, "LEADER_UNREACHABLE")
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.99:8080"})
        self.assertEqual((status, body["error"]), (409, "NOT_FOLLOWER"))

    async def test_leave_keeps_configuration(self):
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        await self.join()
        await self.sync()
        status, body = await self.call(self.to_follower, "POST", "/api/cluster/leave", {})
        self.assertEqual((status, body["was"]), (200, "follower"))
        self.assertEqual(self.follower.state.role, "standalone")
        self.assertEqual(len(await self.follower.store.list("rule")), 1)
        status, _ = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual(status, 201)  # writable again


class GuardTests(SyncTestCase):
    async def test_follower_refuses_mutations_except_exempt(self):
        await self.join()
        status, body = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual(status, 409)
        self.assertEqual(body, {"error": "FOLLOWER_READONLY", "message":
                                "This node is a follower. Make changes on the leader/VIP."})
        status, _ = await self.call(self.to_follower, "POST", "/api/auth/logout", {})
        self.assertEqual(status, 200)
        status, _ = await self.call(self.to_leader, "POST", "/api/things", {})
        self.assertEqual(status, 201)

    async def test_failover_follower_stays_readonly(self):
        await self.join()
        self.follower.machine.set_override("leader")
        self.assertEqual(self.follower.machine.effective, "leader")
        status, body = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual((status, body["error"]), (409, "FOLLOWER_READONLY"))
        _, status_body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertTrue(status_body["failover"])
        self.assertIn("failover active: leader unreachable", status_body["message"])

    async def test_same_origin_check_with_real_headers(self):
        # (site.py read headers as bytes and compared them with str.)
        ok = dict(ADMIN, Origin="http://node", Host="node")
        del ok["Authorization"]
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers=dict(ok, Authorization="Bearer admin"))
        self.assertEqual(status, 200, body)
        self.leader.site.gate.authenticators["admin"].authenticate = _cookie_admin
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers={"Origin": "http://evil.example",
                                                "Host": "node", "Cookie": "s=1"})
        self.assertEqual((status, body["error"]), (403, "CROSS_SITE_REQUEST"))
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers={"Origin": "http://node", "Host": "node",
                                                "Cookie": "s=1"})
        self.assertEqual(status, 200, body)

    async def test_cluster_endpoints_exempt(self):
        await self.join()
        for spec, _ in self.follower.site.endpoints:
            if spec.path.startswith("/api/cluster/"):
                self.assertTrue(spec.readonly_exempt or not spec.mutating, spec.path)


class AuthenticationTests(SyncTestCase):
    async def setUp(self):
        await super().setUp()
        await self.join()
        self.keys = self.follower.state.keys
        self.path = "/api/cluster/sync/changes?since=0&history=" + "0" * 16 + "&wait=0"

    async def raw(self, headers, path=None, method="GET", body=None):
        response = await self.to_leader.request(
            method, "http://leader" + (path or self.path), headers=headers, data=body)
        return response.code, json.loads(await response.content())

    def signed(self, now=None, path=None, method="GET", body=b""):
        return signing.sign_request(self.keys, self.follower.state.node_id, method,
                                    path or self.path, body,
                                    self.clock.seconds() if now is None else now)

    async def test_valid_then_replayed(self):
        headers = self.signed()
        status, _ = await self.raw(headers)
        self.assertEqual(status, 200)
        status, body = await self.raw(headers)
        self.assertEqual((status, body["error"]), (401, "REPLAYED"))

    async def test_replay_rejected_after_leader_restart(self):
        headers = self.signed()
        self.assertEqual((await self.raw(headers))[0], 200)
        # A new server object on the same store: nonces are in the database.
        from sentinel.cluster.server import SyncServer

        fresh = SyncServer(self.leader.store, self.leader.state, self.leader.secrets, self.clock)
        fresh.serving = True
        self.leader.site.gate.authenticators["cluster"] = fresh
        status, body = await self.raw(headers)
        self.assertEqual((status, body["error"]), (401, "REPLAYED"))

    async def test_tampered_rejected(self):
        headers = self.signed()
        status, body = await self.raw(headers, path=self.path.replace("since=0", "since=1"))
        self.assertEqual((status, body["error"]), (401, "BAD_SIGNATURE"))
        headers = self.signed(method="POST", path="/api/cluster/sync/hello", body=b'{"nodeId":"'
                              + self.follower.state.node_id.encode() + b'"}')
        status, body = await self.raw(dict(headers, **{"Content-Type": "application/json"}),
                                      path="/api/cluster/sync/hello", method="POST",
                                      body=b'{"nodeId":"00000000"}')
        self.assertEqual((status, body["error"]), (401, "BAD_SIGNATURE"))

    async def test_expired_rejected(self):
        status, body = await self.raw(self.signed(now=self.clock.seconds() - 61))
        self.assertEqual((status, body["error"]), (401, "EXPIRED"))
        status, body = await self.raw(self.signed(now=self.clock.seconds() + 61))
        self.assertEqual((status, body["error"]), (401, "EXPIRED"))

    async def test_unsigned_rejected(self):
        status, body = await self.raw({})
        self.assertEqual((status, body["error"]), (401, "UNSIGNED"))

    async def test_tampered_response_rejected_by_follower(self):
        from twisted.web.resource import Resource

        real = self.leader.resource

        class Tamper(Resource):
            isLeaf = True

            def render(self, request):
                original_write = request.write

                def write(data):
                    original_write(data.replace(b'"revision"', b'"revisioN"'))

                request.write = write
                return _render_through(real, request)

        self.follower.leader_http = self.pump.add(StubTreq(Tamper()))
        await self.leader.store.create("rule", {"pattern": "x"})
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        self.assertEqual(e.code, "BAD_SIGNATURE")
        self.assertEqual(await self.follower.store.list("rule"), [])


async def _cookie_admin(request):
    from sentinel.api.base import Principal

    return Principal("admin", "session") if request.getHeader("cookie") else None


def _render_through(root, request):
    from twisted.web.resource import getChildForRequest

    return getChildForRequest(root, request).render(request)


class LongPollTests(SyncTestCase):
    async def setUp(self):
        await super().setUp()
        await self.join()
        await self.sync()

    async def test_change_answers_waiting_poll_at_once(self):
        d = ensureDeferred(self.sync())
        await self._settle()
        self.assertNoResult(d)  # the leader holds the poll
        await self.leader.store.create("rule", {"pattern": "now.example"})
        applied = await d
        self.assertEqual(applied.mode, "changes")
        self.assertEqual(len(await self.follower.store.list("rule")), 1)

    async def test_idle_poll_answers_unchanged_after_wait(self):
        revision = await self.follower.store.revision()
        d = ensureDeferred(self.sync())
        await self._settle()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertIsNone(await d)  # unchanged: nothing applied
        self.assertEqual(await self.follower.store.revision(), revision)
        self.assertEqual(self.follower.client.status.leader_revision,
                         await self.leader.store.revision())
        self.assertLess(self.follower.client.status.last_bytes, 200)

    async def test_leader_stepping_down_answers_waiting_poll(self):
        d = ensureDeferred(self.sync())
        await self._settle()
        from sentinel.cluster.server import SyncServerService

        svc = SyncServerService(self.leader.server, self.leader.store, self.clock)
        svc.startService()
        svc.stopService()  # e.g. the role file turned this leader into a follower
        e = await self.assertFailure(d, SyncError)
        self.assertEqual(e.code, "NOT_LEADER")

    async def _settle(self):
        await _held(self.leader)


async def _held(leader, timeout=10.0):
    """Wait (real time) until the leader holds a follower's poll."""
    import time

    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    while not leader.server._waiters:
        if time.monotonic() > deadline:
            raise AssertionError("the follower's poll never reached the leader")
        await deferLater(reactor, 0.005, lambda: None)


class StatusAndReadinessTests(SyncTestCase):
    async def test_leader_status_lists_followers_with_lag(self):
        await self.join()
        await self.sync()  # full: the leader does not know yet what it holds
        d = ensureDeferred(self.sync())  # asks for changes after what it holds
        await _held(self.leader)
        self.clock.advance(5)
        await d
        await self.leader.store.create("rule", {"pattern": "x"})
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/status")
        self.assertEqual(status, 200)
        self.assertEqual(body["configuredRole"], "leader")
        [f] = body["followers"]
        self.assertEqual(f["nodeId"], self.follower.state.node_id)
        self.assertEqual(f["lag"], 1)
        self.assertEqual(body["counts"], {"rule": 1})

    async def test_follower_status_reports_sync(self):
        await self.join()
        await self.leader.store.create("rule", {"pattern": "x"})
        await self.sync()
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertEqual(body["configuredRole"], "follower")
        self.assertEqual(body["effectiveRole"], "follower")
        self.assertTrue(body["readOnly"])
        self.assertEqual(body["leaderRevision"], await self.leader.store.revision())
        sync = body["sync"]
        self.assertIsNotNone(sync["lastSync"])
        self.assertEqual(sync["lastApply"]["counts"], {"rule": {"put": 1, "deleted": 0}})
        self.assertIsNone(sync["lastError"])
        self.assertEqual(body["ready"]["ok"], True)

    async def test_ready_roles(self):
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body), (200, {"ok": True, "role": "standalone"}))
        await self.join()
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body), (200, {"ok": True, "role": "leader"}))
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body["ok"], body["lastSync"]), (503, False, None))
        await self.sync()
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body["ok"], body["role"]), (200, True, "follower"))

    async def test_ready_expires_after_window(self):
        await self.join()
        await self.sync()
        self.clock.advance(20)
        status, _ = await self.call(self.to_follower, "GET", "/api/cluster/ready", headers={})
        self.assertEqual(status, 200)
        self.clock.advance(0.5)
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body["ok"]), (503, False))
        self.assertIn("no successful sync", body["reason"])

    async def test_dead_dns_is_never_ready(self):
        await self.join()
        self.leader.dns_ok = False
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/ready", headers={})
        self.assertEqual((status, body["ok"], body["reason"]), (503, False, "DNS is not answering"))

    async def test_sync_errors_are_recorded_with_codes(self):
        await self.join()
        await self.call(self.to_leader, "POST", "/api/cluster/leave", {})
        self.follower.client.running = True
        self.follower.client._failed(await self._failure())
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertEqual(body["sync"]["lastError"]["code"], "NOT_LEADER")
        self.assertEqual(body["sync"]["consecutiveFailures"], 1)
        self.follower.client.running = False
        for call in self.clock.getDelayedCalls():
            call.cancel()

    async def _failure(self):
        from twisted.python.failure import Failure

        try:
            await self.sync()
        except SyncError:
            return Failure()
        self.fail("sync should fail")
