"""
Sync between two in-memory nodes: signed requests, long-poll, status and
readiness (see tests.cluster.pair).
"""

import json

from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import signing
from sentinel.cluster.status import SyncError
from tests.cluster.pair import SyncTestCase, _held
from tests.cluster.support import ClusterNode, open_store


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

    async def test_a_full_snapshot_is_encoded_off_the_reactor(self):
        # 50,000 rules are ~7 MB of JSON, sealed: the leader's DNS waited for it.
        from twisted.python.threadable import isInIOThread

        from sentinel.api import cluster_sync

        async def many(ctx):
            for i in range(cluster_sync.INLINE_ENTITIES + 1):
                await ctx.put("rewrite", str(i + 1), {"domain": f"h{i}.lan", "answer": "10.0.0.1"})

        await self.leader.store.transact(many)
        seen, real = [], cluster_sync.codec.encode
        self.patch(cluster_sync.codec, "encode",
                   lambda *a: seen.append(isInIOThread()) or real(*a))
        status, _ = await self.raw(self.signed())
        self.assertEqual(status, 200)
        self.assertEqual(seen, [False])

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

    async def test_a_leader_still_starting_says_so_not_bad_signature(self):
        """A restarting leader's port opens before its membership is loaded:
        a follower's poll then gets 503 STARTING (retried quietly), not a
        signature error telling the user to join again."""
        self.leader.state.loaded = False  # what a fresh process is until load()
        status, body = await self.raw(self.signed())
        self.assertEqual((status, body["error"]), (503, "STARTING"))
        with self.assertRaises(SyncError) as caught:
            await self.sync()
        self.assertEqual(caught.exception.code, "LEADER_STARTING")
        await self.leader.state.load()
        self.assertEqual((await self.raw(self.signed()))[0], 200)

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

    async def test_non_leader_authenticates_before_saying_not_leader(self):
        # Unauthenticated callers learn nothing about a node's role: 401 on
        # a follower and on a standalone node alike, no node id.
        to_follower = self.to_follower
        third = await ClusterNode(await open_store(self), self.clock).start()  # in no cluster
        for stub in (to_follower, self.pump.add(StubTreq(third.resource))):
            for headers in ({}, signing.sign_request(
                    signing.ClusterKeys.from_secret(b"x" * 32), "ab" * 8, "GET", self.path,
                    b"", self.clock.seconds())):
                response = await stub.request("GET", "http://node" + self.path,
                                              headers=headers)
                body = json.loads(await response.content())
                self.assertEqual(response.code, 401, body)
                self.assertIn(body["error"], ("UNSIGNED", "BAD_SIGNATURE"))
                self.assertIsNone(response.headers.getRawHeaders(signing.H_NODE))
        # Holding the secret, a member is told the follower is not the leader
        # (and which node it is: how a follower spots its own VIP).
        headers = self.signed()
        nonce = headers[signing.H_NONCE]
        for _ in range(2):  # not remembered: a replay gets NOT_LEADER again
            response = await to_follower.request("GET", "http://node" + self.path,
                                                 headers=headers)
            body = json.loads(await response.content())
            self.assertEqual((response.code, body["error"]), (409, "NOT_LEADER"))
            self.assertEqual(response.headers.getRawHeaders(signing.H_NODE),
                             [self.follower.state.node_id])
        # Non-leaders write no nonces (a follower in failover polls itself).
        self.assertTrue(await self.follower.store.remember_nonce(
            f"{self.follower.state.node_id}:{nonce}", self.clock.seconds() + 125))

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
        self.leader.machine.set_override("follower")  # keepalived made it backup
        self.follower.client.running = True
        self.follower.client._failed(await self._failure())
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertEqual(body["sync"]["lastError"]["code"], "NOT_LEADER")
        self.assertEqual(body["sync"]["consecutiveFailures"], 1)
        # A leader that left the cluster holds no secret any more: to the
        # follower that is a node of another cluster.
        await self.call(self.to_leader, "POST", "/api/cluster/leave", {})
        self.follower.client._failed(await self._failure())
        status, body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertEqual(body["sync"]["lastError"]["code"], "BAD_SIGNATURE")
        self.assertEqual(body["sync"]["consecutiveFailures"], 2)
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



class NoncePruneTests(SynchronousTestCase):
    def test_a_failing_prune_does_not_stop_the_pruning(self):
        from sentinel.cluster.server import SyncServerService

        class Server:
            serving = False

            def release_all(self):
                pass

        class Store:
            def __init__(self):
                self.pruned = []

            def prune_nonces(self, now):
                if not self.pruned:
                    self.pruned.append(None)
                    raise RuntimeError("a store bug")
                self.pruned.append(now)
                return succeed(None)

        clock, store = Clock(), Store()
        svc = SyncServerService(Server(), store, clock)
        svc.startService()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        clock.advance(60)
        self.assertEqual(store.pruned, [None, 60])
        svc.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
