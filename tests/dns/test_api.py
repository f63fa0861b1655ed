"""
GET/PUT /api/dns/settings and GET /api/dns/status against a real SQLite
store and a real (socket-free) DNS runtime; changes apply live.
"""

import json
import os
import tempfile

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock, LoopingCall
from twisted.trial.unittest import TestCase

from sentinel.api.base import ApiError, Principal
from sentinel.api.dns_settings import DnsSettingsApi
from sentinel.api.site import Gate, Site
from sentinel.dns.access import DENIED, OK
from sentinel.dns.answer import parse_response
from sentinel.dns.decision import PolicySource
from sentinel.dns.engine import Engine
from sentinel.dns.runtime import DnsRuntime
from sentinel.dns.settings import DEFAULTS, KEY, KIND
from sentinel.store import Store
from sentinel.store.database import SqliteDatabase
from tests.dns.fakes import ListLog
from tests.dns.test_cache_forwarder import QUESTION, answer_wire

ADMIN = {"Authorization": "Bearer admin"}


class FakeAdmin:
    async def authenticate(self, request):
        if request.getHeader("authorization") == "Bearer admin":
            return Principal("admin", "token")
        return None


class FollowerGuard:
    async def check(self, call):
        raise ApiError(409, "FOLLOWER_READONLY", "This node is a follower.")


class DnsApiTests(TestCase):
    async def asyncSetUp(self, guard=None):
        db = SqliteDatabase(os.path.join(tempfile.mkdtemp(), "sentinel.db"), reactor)
        self.store = Store(db, reactor)
        await self.store.start()
        self.addCleanup(self.store.stop)
        self.engine = Engine(Clock(), PolicySource(), ListLog())
        self.runtime = DnsRuntime(reactor, self.engine, None, ("127.0.0.1:5300",), 5353,
                                  ("127.0.0.1",))
        self.runtime.start(self.store)
        self.addCleanup(self.runtime.stop)
        site = Site([DnsSettingsApi(self.store, self.runtime)],
                    Gate({"admin": FakeAdmin()}, guard))
        self.http = StubTreq(site.resource())
        # Deliver StubTreq traffic while the test awaits the (threaded) store.
        pump = LoopingCall(self.http.flush)
        pump.start(0.002)
        self.addCleanup(pump.stop)

    async def call(self, method, path, body=None, headers=ADMIN):
        hdrs = dict(headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        response = await self.http.request(method, "http://sentinel" + path, data=data,
                                           headers=hdrs)
        raw = await response.content()
        return response.code, json.loads(raw) if raw else None

    def cached(self, key=b"k"):
        answer = parse_response(answer_wire(b"\x00\x01"), 12 + len(QUESTION))
        self.engine.cache.put(key, answer, 0.0)

    async def test_admin_only(self):
        await self.asyncSetUp()
        status, body = await self.call("GET", "/api/dns/settings", headers={})
        self.assertEqual((status, body["error"]), (401, "UNAUTHENTICATED"))
        status, _ = await self.call("PUT", "/api/dns/settings", {"blocked_ttl": 5}, headers={})
        self.assertEqual(status, 401)
        self.assertIsNone(await self.store.get(KIND, KEY))

    async def test_defaults_then_partial_update(self):
        await self.asyncSetUp()
        status, body = await self.call("GET", "/api/dns/settings")
        self.assertEqual((status, body), (200, DEFAULTS.to_data()))
        status, body = await self.call("PUT", "/api/dns/settings",
                                       {"blocking_mode": "null", "blocked_ttl": 60})
        self.assertEqual((status, body["blocking_mode"], body["cache_size"]),
                         (200, "null", DEFAULTS.cache_size))
        status, body = await self.call("PUT", "/api/dns/settings", {"cache_size": 50})
        self.assertEqual((body["blocking_mode"], body["cache_size"]), ("null", 50))
        stored = (await self.store.get(KIND, KEY)).data
        self.assertEqual(stored, {"blocking_mode": "null", "blocked_ttl": 60, "cache_size": 50})
        self.assertEqual((await self.call("GET", "/api/dns/settings"))[1], body)

    async def test_invalid_bodies_are_rejected_with_the_field(self):
        await self.asyncSetUp()
        cases = [
            ({"upstreams": ["tls://dns.example"]}, "upstreams.0"),
            ({"blocking_mode": "sinkhole"}, "blocking_mode"),
            ({"allowed_networks": ["lan"]}, "allowed_networks.0"),
            ({"cache_min_ttl": 100, "cache_max_ttl": 10}, "cache_min_ttl"),
            ({"nonsense": True}, "(body)"),
            ({"upstreams": ["127.0.0.1:5353"]}, "upstreams.0"),  # ourselves: a loop
        ]
        for body, field in cases:
            status, reply = await self.call("PUT", "/api/dns/settings", body)
            self.assertEqual(status, 400, body)
            self.assertEqual(reply["error"], "VALIDATION_ERROR")
            self.assertEqual(reply["details"][0]["field"], field, reply)
        self.assertIsNone(await self.store.get(KIND, KEY))

    async def test_changes_apply_live_and_flush_only_for_upstreams(self):
        await self.asyncSetUp()
        self.cached()
        await self.call("PUT", "/api/dns/settings", {
            "allowed_networks": ["198.18.0.0/15"], "rate_limit_qps": 0,
            "upstream_timeout_ms": 700, "cache_max_ttl": 600})
        self.assertEqual(self.engine.access.check("198.19.0.1", 0), OK)
        self.assertEqual(self.engine.access.check("192.168.1.1", 0), DENIED)
        self.assertEqual(self.engine.forwarder.timeout, 0.7)
        self.assertEqual(self.engine.cache.max_ttl, 600)
        self.assertEqual(len(self.engine.cache), 1)  # not flushed
        await self.call("PUT", "/api/dns/settings", {"upstreams": ["127.0.0.1:5301",
                                                                   "tcp://127.0.0.1:5302"]})
        self.assertEqual([u.text for u in self.engine.forwarder.upstreams],
                         ["127.0.0.1:5301", "tcp://127.0.0.1:5302"])
        self.assertEqual(len(self.engine.cache), 0)  # answers came from the old upstreams
        self.cached()
        await self.call("PUT", "/api/dns/settings", {"upstreams": []})  # back to start-up
        self.assertEqual([u.text for u in self.engine.forwarder.upstreams], ["127.0.0.1:5300"])
        self.assertEqual(len(self.engine.cache), 0)

    async def test_invalid_stored_settings_keep_the_running_ones(self):
        await self.asyncSetUp()
        await self.call("PUT", "/api/dns/settings", {"cache_size": 77})
        await self.store.put(KIND, KEY, {"cache_size": "lots"})  # e.g. a newer version
        self.assertEqual(self.runtime.settings.cache_size, 77)
        self.assertEqual(self.engine.cache.size, 77)
        status, body = await self.call("GET", "/api/dns/settings")
        self.assertEqual((status, body["cache_size"]), (200, 77))

    async def test_settings_stored_before_start_are_applied(self):
        db = SqliteDatabase(os.path.join(tempfile.mkdtemp(), "sentinel.db"), reactor)
        store = Store(db, reactor)
        await store.start()
        self.addCleanup(store.stop)
        await store.put(KIND, KEY, {"upstreams": ["127.0.0.1:5309"], "cache_size": 9})
        engine = Engine(Clock(), PolicySource(), ListLog())
        runtime = DnsRuntime(reactor, engine, None, ("127.0.0.1:5300",), 5353)
        runtime.start(store)
        self.addCleanup(runtime.stop)
        await runtime._read()
        self.assertEqual([u.text for u in engine.forwarder.upstreams], ["127.0.0.1:5309"])
        self.assertEqual(engine.cache.size, 9)

    async def test_follower_refuses_changes(self):
        await self.asyncSetUp(guard=FollowerGuard())
        status, body = await self.call("PUT", "/api/dns/settings", {"cache_size": 5})
        self.assertEqual((status, body["error"]), (409, "FOLLOWER_READONLY"))
        self.assertEqual((await self.call("GET", "/api/dns/settings"))[0], 200)

    async def test_status(self):
        await self.asyncSetUp()
        # The API refuses a loop, but the start-up list can contain one.
        self.runtime._set_upstreams(("127.0.0.1:5353", "127.0.0.1:5301"))
        status, body = await self.call("GET", "/api/dns/status")
        self.assertEqual(status, 200)
        self.assertEqual(body["startup_upstreams"], ["127.0.0.1:5300"])
        self.assertEqual(body["upstreams"][0]["used"], False)
        self.assertIn("loop", body["upstreams"][0]["reason"])
        self.assertEqual(body["upstreams"][1], {"spec": "127.0.0.1:5301", "used": True,
                                                "healthy": True})
