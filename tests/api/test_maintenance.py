"""/api/maintenance/export and /import: configuration backup and restore."""

from twisted.trial.unittest import TestCase

from sentinel.api.backup_checks import default_validators
from sentinel.filtering import model
from tests.api.harness import EVIL_ORIGIN, make_api

ADS = model.check("rule", {"pattern": "ads.example", "action": "block"})
OK = model.check("rule", {"pattern": "ok.example", "action": "allow"})


class BackupTests(TestCase):
    async def setUp(self):
        self.api = await make_api(self)
        self.cookie = await self.api.setup_admin()
        self.api.entity_validators.update(default_validators())
        s = self.api.store
        await s.put("setting", "dns", {"cache_size": 1000})
        await s.create("rule", ADS)
        await s.create("rule", OK)
        await s.create("client", model.check("client", {"name": "laptop",
                                                        "addresses": ["192.168.1.5"]}))
        await self.api.secrets.set("upstream.key", "the-secret-value")
        await self.api.token(self.cookie)

    async def export(self):
        r = await self.api.client.get("/api/maintenance/export", cookie=self.cookie)
        self.assertEqual(r.status, 200)
        return r, r.json()

    async def restore(self, document, dry_run=False, **kw):
        path = "/api/maintenance/import" + ("?dry_run=true" if dry_run else "")
        return await self.api.client.post(path, json=document, cookie=self.cookie, **kw)

    async def test_export_has_configuration_but_no_secrets_accounts_or_tokens(self):
        r, doc = await self.export()
        self.assertIn('attachment; filename="sentinel-backup-', r.header("content-disposition"))
        self.assertEqual((doc["format"], doc["version"]), ("sentinel-backup", 1))
        self.assertEqual(doc["entities"]["rule"]["1"]["pattern"], "ads.example")
        self.assertEqual(doc["entities"]["setting"]["dns"], {"cache_size": 1000})
        self.assertEqual(set(doc["entities"]), {"setting", "rule", "client"})
        self.assertEqual(doc["secrets"], ["upstream.key"])
        self.assertEqual(doc["revision"], await self.api.store.revision())
        for forbidden in (b"the-secret-value", b"sealed", b"scrypt$", b"api_token", b"session"):
            self.assertNotIn(forbidden, r.body)

    async def test_dry_run_then_restore_in_one_transaction(self):
        _, doc = await self.export()
        s = self.api.store
        await s.delete("rule", "2")  # to be re-added
        await s.put("rule", "1", dict(ADS, pattern="changed.example"))
        await s.create("rule", dict(ADS, pattern="new.example"))  # id 3
        await s.put("setting", "extra", {"x": 1})
        await s.delete("client", "1")
        await s.put("rewrite", "1", {"domain": "nas.home", "answer": "10.0.0.2"})  # untouched
        before = await s.revision()

        r = await self.restore(doc, dry_run=True)
        self.assertEqual(r.status, 200)
        result = r.json()
        self.assertEqual((result["dry_run"], result["applied"]), (True, False))
        self.assertEqual(result["changes"]["rule"],
                         {"added": ["2"], "changed": ["1"], "removed": ["3"]})
        self.assertEqual(result["changes"]["setting"],
                         {"added": [], "changed": [], "removed": ["extra"]})
        self.assertEqual(result["changes"]["client"], {"added": ["1"], "changed": [],
                                                       "removed": []})
        self.assertNotIn("rewrite", result["changes"])
        self.assertEqual(result["unchanged"], 1)  # setting dns
        self.assertEqual(result["revision"], before)
        self.assertEqual(await s.revision(), before)  # nothing changed
        self.assertEqual((await s.get("rule", "1")).data["pattern"], "changed.example")

        seen = []
        s.subscribe(lambda revision, changed: seen.append((revision, len(changed))))
        r = await self.restore(doc)
        result = r.json()
        self.assertEqual((result["dry_run"], result["applied"]), (False, True))
        self.assertEqual(seen, [(before + 1, 5)])  # one revision for the whole restore
        self.assertEqual(result["revision"], before + 1)
        self.assertEqual((await s.get("rule", "1")).data["pattern"], "ads.example")
        self.assertEqual((await s.get("rule", "2")).data["pattern"], "ok.example")
        self.assertIsNone(await s.get("rule", "3"))
        self.assertIsNone(await s.get("setting", "extra"))
        self.assertEqual((await s.get("client", "1")).data["name"], "laptop")
        self.assertIsNotNone(await s.get("rewrite", "1"))
        # Accounts, tokens and secrets are untouched.
        self.assertEqual(await self.api.secrets.get("upstream.key"), "the-secret-value")
        self.assertEqual(len(await s.list("api_token")), 1)
        # Restoring the same again changes nothing.
        r = await self.restore(doc)
        self.assertEqual(r.json()["revision"], before + 1)
        self.assertEqual(r.json()["unchanged"], 4)
        self.assertEqual(seen, [(before + 1, 5)])
        await self.api.login()

    async def test_a_restore_failing_half_way_changes_nothing(self):
        import sqlite3

        from sentinel.store.entities import ConfigTx

        _, doc = await self.export()
        s = self.api.store
        await s.put("rule", "1", dict(ADS, pattern="changed.example"))
        await s.delete("rule", "2")
        before = await s.revision()
        put, writes = ConfigTx.put, []

        async def failing_put(ctx, kind, key, data):
            writes.append((kind, key))
            if len(writes) == 2:  # the first write went through; the database fails now
                raise sqlite3.OperationalError("disk I/O error")
            return await put(ctx, kind, key, data)

        self.patch(ConfigTx, "put", failing_put)
        r = await self.restore(doc)
        self.assertGreaterEqual(r.status, 500, r)
        self.assertEqual(len(writes), 2)
        self.assertEqual(await s.revision(), before)
        self.assertEqual((await s.get("rule", "1")).data["pattern"], "changed.example")
        self.assertIsNone(await s.get("rule", "2"))
        self.patch(ConfigTx, "put", put)
        r = await self.restore(doc)  # and once the database works again, all of it
        self.assertEqual(r.status, 200, r)
        self.assertEqual((await s.get("rule", "2")).data["pattern"], "ok.example")
        self.assertEqual((await s.get("rule", "1")).data["pattern"], "ads.example")
        self.flushLoggedErrors(sqlite3.OperationalError)

    async def test_a_big_backup_is_read_and_checked_off_the_reactor(self):
        """Parsing and checking 16 MiB takes seconds: DNS (the reactor) must not wait."""
        from twisted.python.threadable import isInIOThread

        from sentinel.api import inputs

        _, doc = await self.export()
        loads, seen = inputs.strictjson.loads, []

        def recording_loads(*args, **kw):
            seen.append(("parse", isInIOThread()))
            return loads(*args, **kw)

        def recording_check(key, data):
            seen.append(("check", isInIOThread()))
            return data

        self.patch(inputs.strictjson, "loads", recording_loads)
        self.api.entity_validators["rule"] = recording_check
        rules = {str(i): dict(ADS, pattern=f"r{i}.example") for i in range(1, 1000)}
        r = await self.restore(dict(doc, entities={"rule": rules}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(seen), {("parse", False), ("check", False)})

    async def test_export_is_built_off_the_reactor(self):
        """50,000 rules are ~7 MB of JSON (the reactor, and DNS, waited ~350 ms)."""
        from twisted.python.threadable import isInIOThread

        from sentinel.api import maintenance
        from sentinel.store import entities

        seen = []
        encode, entity = maintenance.encode_in_pieces, entities._entity
        self.patch(maintenance, "encode_in_pieces",
                   lambda value: seen.append(("encode", isInIOThread())) or encode(value))
        self.patch(entities, "_entity",
                   lambda row: (row[0] == "rule" and seen.append(("decode", isInIOThread())))
                   or entity(row))
        await self.api.store.transact(lambda ctx: _many_rules(ctx, 1000))
        _, doc = await self.export()
        self.assertEqual(len(doc["entities"]["rule"]), 1002)
        self.assertEqual(set(seen), {("encode", False), ("decode", False)})

    async def test_a_backup_larger_than_an_import_takes_is_refused_at_export(self):
        """An export over 16 MiB could be downloaded but never restored (413)."""
        from sentinel.api.inputs import MAX_REQUEST_BODY

        filler = "x" * 60_000  # under the 64 KiB of one entity
        count = MAX_REQUEST_BODY // len(filler) + 1

        async def big(ctx):
            for i in range(count):
                await ctx.put("setting", f"big{i}", {"notes": filler})

        await self.api.store.transact(big)
        r = await self.api.client.get("/api/maintenance/export", cookie=self.cookie)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()["error"], "BACKUP_TOO_LARGE")
        self.assertIn(f"more than the {MAX_REQUEST_BODY} bytes (16 MiB) an import accepts",
                      r.json()["message"])
        # Just under the limit: exported, and the same bytes import (dry run).
        await self.api.store.delete("setting", "big0")
        await self.api.store.delete("setting", "big1")
        r = await self.api.client.get("/api/maintenance/export", cookie=self.cookie)
        self.assertEqual(r.status, 200)
        self.assertLessEqual(len(r.body), MAX_REQUEST_BODY)
        self.assertGreater(len(r.body), MAX_REQUEST_BODY - 3 * len(filler))
        self.api.entity_validators["setting"] = lambda key, data: data
        r = await self.api.client.post(
            "/api/maintenance/import?dry_run=true", data=r.body, cookie=self.cookie,
            headers={"content-type": "application/json"})
        self.assertEqual(r.status, 200, r)
        # Every entity as stored: the big settings, dns, two rules, a client.
        self.assertEqual(r.json()["unchanged"], count - 2 + 4)

    async def test_secrets_missing_are_reported(self):
        _, doc = await self.export()
        await self.api.secrets.delete("upstream.key")
        r = await self.restore(doc, dry_run=True)
        self.assertEqual(r.json()["secrets_missing"], ["upstream.key"])

    async def test_invalid_documents_change_nothing(self):
        _, doc = await self.export()
        self.api.entity_validators["rule"] = _check_rule
        before = await self.api.store.revision()
        bad_rule = dict(doc, entities=dict(doc["entities"], rule={
            "1": {"pattern": "ok.example", "action": "block"},
            "7": {"pattern": "", "action": "explode"}}))
        cases = [
            (bad_rule, "entities.rule.7"),
            (dict(doc, entities={"user": {"eve": {"password": "x"}}}), "entities.user"),
            (dict(doc, entities={"session": {}}), "entities.session"),
            (dict(doc, entities={"rule": {"abc": {"pattern": "a", "action": "block"}}}),
             "entities.rule.abc"),
            (dict(doc, entities={"rule": {"1": None}}), "entities.rule.1"),
            (dict(doc, entities={"setting": {"a\u0000b": 1}}), "entities.setting"),
            (dict(doc, entities={"Bad Kind": {}}), "entities"),
            (dict(doc, format="something-else"), "format"),
            (dict(doc, version=2), "version"),
            ({"format": "sentinel-backup", "version": 1}, "(body)"),
        ]
        for document, field in cases:
            r = await self.restore(document)
            self.assertEqual(r.status, 400, document.get("entities", document))
            self.assertEqual(r.json()["error"], "VALIDATION_ERROR")
            self.assertEqual(r.json()["details"][0]["field"], field)
        self.assertEqual(await self.api.store.revision(), before)
        r = await self.api.client.post("/api/maintenance/import", data=b"{not json",
                                       headers={"content-type": "application/json"},
                                       cookie=self.cookie)
        self.assertEqual(r.status, 400)

    async def test_newer_older_and_hand_edited_files_get_one_clear_error(self):
        _, doc = await self.export()
        before = await self.api.store.revision()
        for version, made_by in ((2, "a newer"), (0, "an older")):
            r = await self.restore(dict(doc, version=version))
            self.assertEqual(r.status, 400)
            self.assertIn(f"format {version} backup, made by {made_by} Sentinel",
                          r.json()["message"])
        # A key written twice (json.loads would keep the last and lose the first rule).
        body = (b'{"format": "sentinel-backup", "version": 1, "entities": {"rule": {'
                b'"1": {"pattern": "a.example", "action": "block"}, '
                b'"1": {"pattern": "b.example", "action": "block"}}}}')
        r = await self.api.client.post("/api/maintenance/import", data=body, cookie=self.cookie,
                                       headers={"content-type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["error"], "BAD_JSON")
        self.assertIn("the key '1' appears twice", r.json()["message"])
        self.assertEqual(await self.api.store.revision(), before)

    async def test_auth_origin_and_large_backups(self):
        _, doc = await self.export()
        c = self.api.client
        self.assertEqual((await c.get("/api/maintenance/export")).status, 401)
        self.assertEqual((await c.post("/api/maintenance/import", json=doc)).status, 401)
        r = await self.restore(doc, headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 403)
        # Bigger than the usual 64 KiB limit: backups with many rules restore.
        rules = {str(i): {"pattern": f"r{i}.example", "action": "block"} for i in range(1, 3000)}
        r = await self.restore(dict(doc, entities={"rule": rules}))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.json()["changes"]["rule"]["added"]), 2997)
        self.assertEqual(len(await self.api.store.list("rule")), 2999)


async def _many_rules(ctx, n):
    for i in range(n):
        await ctx.create("rule", dict(ADS, pattern=f"many{i}.example"))


def _check_rule(key, data):
    if not data.get("pattern"):
        raise ValueError("pattern: must not be empty")
    if data.get("action") not in ("block", "allow"):
        raise ValueError("action: block or allow")
