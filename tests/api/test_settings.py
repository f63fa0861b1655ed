"""/api/settings/ui: UI preferences."""

from twisted.trial.unittest import TestCase

from tests.api.harness import EVIL_ORIGIN, make_api

DEFAULTS = {"theme": "system", "time_format": "24h", "page_size": 50, "refresh_seconds": 10}


class UiSettingsTests(TestCase):
    async def setUp(self):
        self.api = await make_api(self)
        self.cookie = await self.api.setup_admin()

    async def test_defaults_put_patch(self):
        c, cookie = self.api.client, self.cookie
        self.assertEqual((await c.get("/api/settings/ui", cookie=cookie)).json(), DEFAULTS)
        r = await c.put("/api/settings/ui", json={"theme": "dark", "sidebar": {"open": True}},
                        cookie=cookie)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), dict(DEFAULTS, theme="dark", sidebar={"open": True}))
        r = await c.patch("/api/settings/ui", json={"page_size": 100, "sidebar": None},
                          cookie=cookie)
        self.assertEqual(r.json(), dict(DEFAULTS, theme="dark", page_size=100))
        got = (await c.get("/api/settings/ui", cookie=cookie)).json()
        self.assertEqual(got, dict(DEFAULTS, theme="dark", page_size=100))
        # Synced configuration: a setting entity.
        self.assertEqual((await self.api.store.get("setting", "ui")).data,
                         {"theme": "dark", "page_size": 100})
        # PUT replaces: what is not sent returns to its default.
        r = await c.put("/api/settings/ui", json={"language": "pt-BR"}, cookie=cookie)
        self.assertEqual(r.json(), dict(DEFAULTS, language="pt-BR"))

    async def test_validation(self):
        c, cookie = self.api.client, self.cookie
        for body, field in (({"theme": "purple"}, "theme"), ({"page_size": 5}, "page_size"),
                            ({"page_size": "50"}, "page_size"), ({"language": "english!"},
                                                                 "language")):
            r = await c.put("/api/settings/ui", json=body, cookie=cookie)
            self.assertEqual(r.status, 400, body)
            self.assertEqual(r.json()["details"][0]["field"], field)
        r = await c.put("/api/settings/ui", json={"Bad-Key": 1}, cookie=cookie)
        self.assertEqual(r.status, 400)
        r = await c.put("/api/settings/ui", json={"blob": "x" * 20000}, cookie=cookie)
        self.assertEqual(r.status, 413)
        r = await c.patch("/api/settings/ui", json={"theme": None}, cookie=cookie)
        self.assertEqual(r.status, 200)
        self.assertIsNone(await self.api.store.get("setting", "bad"))
        r = await c.put("/api/settings/ui", json=[], cookie=cookie)
        self.assertEqual(r.status, 400)

    async def test_patches_cannot_add_up_past_the_limit(self):
        # Each PATCH is under 16 KiB, but together they were stored without
        # limit (and then a backup of them could not be restored).
        c, cookie = self.api.client, self.cookie
        for name in ("a", "b", "c"):
            r = await c.patch("/api/settings/ui", json={name: "x" * 6000}, cookie=cookie)
            if r.status != 200:
                break
        self.assertEqual(r.status, 413)
        self.assertEqual(r.json()["error"], "BODY_TOO_LARGE")
        self.assertIn("16384 bytes", r.json()["message"])
        # Nothing of the refused PATCH was stored; removing keys still works.
        self.assertEqual(sorted((await self.api.store.get("setting", "ui")).data), ["a", "b"])
        r = await c.patch("/api/settings/ui", json={"a": None, "c": "x" * 6000}, cookie=cookie)
        self.assertEqual(r.status, 200)
        self.assertEqual(sorted((await self.api.store.get("setting", "ui")).data), ["b", "c"])

    async def test_auth_and_origin(self):
        c = self.api.client
        self.assertEqual((await c.get("/api/settings/ui")).status, 401)
        self.assertEqual((await c.put("/api/settings/ui", json={})).status, 401)
        r = await c.put("/api/settings/ui", json={"theme": "dark"}, cookie=self.cookie,
                        headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 403)
        self.assertIsNone(await self.api.store.get("setting", "ui"))
