"""/api/system/status: version, uptime, store, subsystem providers."""

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from sentinel import __version__
from tests.api.harness import START, make_api


class SystemStatusTests(TestCase):
    async def test_status_and_providers(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        api.status_providers["dns"] = lambda: {"queries": 12}
        api.status_providers["filtering"] = lambda: succeed({"rules": 3})
        api.status_providers["broken"] = lambda: 1 / 0

        async def coroutine():
            return {"ok": True}

        api.status_providers["async"] = coroutine
        api.clock.advance(90)
        r = await api.client.get("/api/system/status", cookie=cookie)
        self.assertEqual(r.status, 200)
        body = r.json()
        self.assertEqual(body["version"], __version__)
        self.assertEqual(body["started_at"], START)
        self.assertEqual(body["uptime_seconds"], 90)
        self.assertEqual((body["store_backend"], body["store_available"]), ("sqlite", True))
        self.assertEqual(body["revision"], await api.store.revision())
        self.assertEqual(body["components"]["dns"], {"queries": 12})
        self.assertEqual(body["components"]["filtering"], {"rules": 3})
        self.assertEqual(body["components"]["async"], {"ok": True})
        self.assertEqual(body["components"]["broken"], {"error": "unavailable (ZeroDivisionError)"})
        self.flushLoggedErrors(ZeroDivisionError)

    async def test_a_hanging_provider_times_out(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        api.status_providers["slow"] = lambda: Deferred()
        from twisted.internet import reactor, task
        from twisted.internet.defer import ensureDeferred

        pending = ensureDeferred(api.client.get("/api/system/status", cookie=cookie))

        for _ in range(50):  # let the request reach the provider, then time out
            await task.deferLater(reactor, 0.005, lambda: None)
            api.clock.advance(1)
        r = await pending
        self.assertEqual(r.json()["components"]["slow"]["error"], "unavailable (TimeoutError)")
        self.flushLoggedErrors()

    async def test_needs_auth(self):
        api = await make_api(self)
        self.assertEqual((await api.client.get("/api/system/status")).status, 401)


class WiredSystemStatusTests(TestCase):
    async def test_the_daemon_reports_dns_and_cluster(self):
        from tests.api.wiring import wired_api

        w, client, token, _ = await wired_api(self)
        body = (await client.get("/api/system/status", token=token)).json()
        self.assertIn("queries", body["components"]["dns"])
        self.assertEqual(body["components"]["cluster"]["role"], "leader")
        self.assertEqual(body["store_backend"], "sqlite")
