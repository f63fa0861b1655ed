"""
Two in-memory nodes: the follower's real client (treq StubTreq) against the
leader's real resource (gate, signed endpoints), real stores, a Clock.
"""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from sentinel.api.base import Reply, endpoint
from tests.cluster.support import ADMIN, ClusterNode, Pump, open_store


class Mutations:
    """An area with a mutating route, to see the guard at work."""

    @endpoint("POST", "/api/things", body={"type": "object"}, summary="x")
    async def create(self, call):
        return Reply(201, {"ok": True})

    @endpoint("POST", "/api/auth/logout", body={"type": "object"}, readonly_exempt=True)
    async def logout(self, call):
        return {"ok": True}


class SyncTestCase(TestCase):
    def areas(self, node):
        """The API areas ``node`` serves besides the cluster's own."""
        return [Mutations()]

    async def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.pump = Pump(self)
        self.leader = await ClusterNode(await open_store(self), self.clock,
                                        areas=self.areas).start()
        self.follower = await ClusterNode(await open_store(self), self.clock,
                                          areas=self.areas).start()
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
