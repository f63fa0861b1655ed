"""/api/secrets: write-only secrets."""

from twisted.trial.unittest import TestCase

from tests.api.harness import EVIL_ORIGIN, make_api


class SecretsApiTests(TestCase):
    async def setUp(self):
        self.api = await make_api(self)
        self.cookie = await self.api.setup_admin()

    async def test_set_status_delete(self):
        c, cookie = self.api.client, self.cookie
        self.api.secret_catalog["smtp.password"] = "mail server password"
        r = await c.get("/api/secrets/status", cookie=cookie)
        self.assertEqual(r.json(), {"secrets": [
            {"name": "smtp.password", "set": False, "readable": None,
             "description": "mail server password"}]})
        r = await c.put("/api/secrets/smtp.password", json={"value": "s3cr3t value"},
                        cookie=cookie)
        self.assertEqual((r.status, r.body), (204, b""))
        r = await c.put("/api/secrets/other_key", json={"value": "another"}, cookie=cookie)
        self.assertEqual(r.status, 204)
        r = await c.get("/api/secrets/status", cookie=cookie)
        self.assertEqual(r.json()["secrets"], [
            {"name": "other_key", "set": True, "readable": True, "description": None},
            {"name": "smtp.password", "set": True, "readable": True,
             "description": "mail server password"}])
        self.assertNotIn(b"s3cr3t", r.body)
        self.assertEqual(await self.api.secrets.get("smtp.password"), "s3cr3t value")
        # Sealed at rest.
        stored = await self.api.store.get("secret", "smtp.password")
        self.assertNotIn("s3cr3t", repr(stored.data))
        # Replace.
        await c.put("/api/secrets/smtp.password", json={"value": "new"}, cookie=cookie)
        self.assertEqual(await self.api.secrets.get("smtp.password"), "new")
        r = await c.delete("/api/secrets/other_key", cookie=cookie)
        self.assertEqual(r.status, 204)
        r = await c.delete("/api/secrets/other_key", cookie=cookie)
        self.assertEqual((r.status, r.json()["error"]), (404, "NOT_FOUND"))

    async def test_a_secret_sealed_under_another_key_is_not_readable(self):
        """node.key lost or replaced: the status says which secrets it hit."""
        import os

        from sentinel.crypto import SecretBox
        from sentinel.secrets import Secrets

        c, cookie = self.api.client, self.cookie
        await c.put("/api/secrets/mine", json={"value": "v"}, cookie=cookie)
        await Secrets(self.api.store, SecretBox(os.urandom(32))).set("theirs", "v")
        r = await c.get("/api/secrets/status", cookie=cookie)
        self.assertEqual([(s["name"], s["set"], s["readable"]) for s in r.json()["secrets"]],
                         [("mine", True, True), ("theirs", True, False)])

    async def test_no_way_to_read_a_value(self):
        c, cookie = self.api.client, self.cookie
        await c.put("/api/secrets/k", json={"value": "v4lue"}, cookie=cookie)
        r = await c.get("/api/secrets/k", cookie=cookie)
        self.assertEqual(r.status, 405)
        self.assertNotIn(b"v4lue", r.body)

    async def test_bad_names_and_values(self):
        c, cookie = self.api.client, self.cookie
        for name in ("UPPER", "-lead", "a" * 65, "sp%20ace"):
            r = await c.put(f"/api/secrets/{name}", json={"value": "x"}, cookie=cookie)
            self.assertEqual(r.status, 404, name)
        for body in ({"value": ""}, {"value": 5}, {}, {"value": "x", "more": 1}):
            r = await c.put("/api/secrets/ok", json=body, cookie=cookie)
            self.assertEqual(r.status, 400, body)
        r = await c.put("/api/secrets/ok", json={"value": "x" * 70000}, cookie=cookie)
        self.assertEqual(r.status, 413)
        self.assertEqual(await self.api.secrets.names(), [])

    async def test_auth_and_origin(self):
        c = self.api.client
        self.assertEqual((await c.get("/api/secrets/status")).status, 401)
        self.assertEqual((await c.put("/api/secrets/x", json={"value": "v"})).status, 401)
        r = await c.put("/api/secrets/x", json={"value": "v"}, cookie=self.cookie,
                        headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 403)
        self.assertEqual(await self.api.secrets.names(), [])
