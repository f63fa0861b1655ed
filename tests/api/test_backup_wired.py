"""
Backup and restore with the daemon's real subsystems: what the filtering
and DNS areas store round-trips through export/import unchanged, and
entities their own checks would refuse are refused by the import.
"""

from twisted.trial.unittest import TestCase

from tests.api.wiring import wired_api


class WiredBackupTests(TestCase):
    async def setUp(self):
        self.w, self.client, token, _ = await wired_api(self)
        self.auth = {"token": token}

    async def call(self, method, path, body=None, expect=None):
        kw = dict(self.auth)
        if body is not None:
            kw["json"] = body
        r = await self.client.request(method, path, **kw)
        if expect is not None:
            self.assertEqual(r.status, expect, r)
        return r

    async def download_attempted(self, list_id):
        """The leader tries the (unreachable, loopback) URL at once: wait for it."""
        from twisted.internet import reactor, task

        for _ in range(500):
            r = await self.call("GET", f"/api/blocklists/{list_id}", expect=200)
            if r.json().get("checked_at"):
                return
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail("the blocklist download was never attempted")

    async def test_real_configuration_round_trips(self):
        await self.call("POST", "/api/rules", {"pattern": "ads.example", "action": "block"}, 201)
        await self.call("POST", "/api/clients", {"name": "laptop",
                                                 "addresses": ["192.168.1.0/24"]}, 201)
        await self.call("POST", "/api/dns/rewrites", {"domain": "nas.home",
                                                      "answer": "192.168.1.2"}, 201)
        await self.call("POST", "/api/blocklists", {"name": "local", "url":
                                                    "http://127.0.0.1:9/list.txt"}, 201)
        await self.call("PUT", "/api/settings/ui", {"theme": "dark"}, 200)
        await self.download_attempted(1)
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        for kind in ("rule", "client", "rewrite", "blocklist", "setting"):
            self.assertIn(kind, doc["entities"])
        r = await self.call("POST", "/api/maintenance/import?dry_run=true", doc, 200)
        changes = r.json()["changes"]
        self.assertTrue(all(c == {"added": [], "changed": [], "removed": []}
                            for c in changes.values()), changes)
        # Delete a rule, restore: it is back with its id.
        await self.call("DELETE", "/api/rules/1", expect=204)
        r = await self.call("POST", "/api/maintenance/import", doc, 200)
        self.assertEqual(r.json()["changes"]["rule"]["added"], ["1"])
        r = await self.call("GET", "/api/rules/1", expect=200)
        self.assertEqual(r.json()["pattern"], "ads.example")

    async def test_pause_and_filtering_settings_round_trip(self):
        await self.call("POST", "/api/protection/pause", {"minutes": 5}, 200)
        await self.call("PUT", "/api/filtering/settings", {"query_log_days": 3}, 200)
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        self.assertIn("protection", doc["entities"]["setting"])
        r = await self.call("POST", "/api/maintenance/import?dry_run=true", doc, 200)
        self.assertEqual(r.json()["changes"]["setting"],
                         {"added": [], "changed": [], "removed": []})

    async def test_entities_the_owners_refuse_are_refused(self):
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        before = await self.w.store.revision()
        cases = {
            "rule": {"1": {"pattern": "ads.example", "action": "explode"}},
            "client": {"1": {"name": "x", "addresses": ["not an address"]}},
            "rewrite": {"1": {"domain": "nas.home", "answer": 12}},
            "setting": {"dns": {"upstreams": ["nonsense://"]}},
        }
        settings = [
            {"filtering": {"query_log_days": -1}},
            {"filtering": {"no_such_field": 1}},
            {"protection": {"paused": "yes"}},
            {"protection": {"until": 5}},
            {"something_new": {"x": 1}},
        ]
        attempts = list(cases.items()) + [("setting", items) for items in settings]
        for kind, items in attempts:
            r = await self.call("POST", "/api/maintenance/import",
                                dict(doc, entities={kind: items}))
            self.assertEqual(r.status, 400, (kind, r))
            self.assertTrue(r.json()["details"][0]["field"].startswith(f"entities.{kind}."),
                            r.json())
        self.assertEqual(await self.w.store.revision(), before)

    async def test_unknown_kinds_and_unaddressable_ids_are_refused(self):
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        before = await self.w.store.revision()
        rule = {"pattern": "x.example", "action": "block"}
        cases = [
            ({"gadget": {"1": {"x": 1}}}, "entities.gadget"),  # from a newer Sentinel
            ({"rule": {str(2 ** 53 + 1): rule}}, f"entities.rule.{2 ** 53 + 1}"),
            ({"rule": {"999999999999999999": rule}}, "entities.rule.999999999999999999"),
        ]
        for entities, field in cases:
            r = await self.call("POST", "/api/maintenance/import",
                                dict(doc, entities=entities), 400)
            self.assertEqual(r.json()["details"][0]["field"], field)
        self.assertEqual(await self.w.store.revision(), before)
        self.assertEqual(await self.w.store.list("gadget"), [])
        # The highest id the API can address restores, and can be deleted again.
        r = await self.call("POST", "/api/maintenance/import",
                            dict(doc, entities={"rule": {str(2 ** 53): rule}}), 200)
        await self.call("DELETE", f"/api/rules/{2 ** 53}", expect=204)

    async def test_entities_larger_than_the_api_takes_are_refused(self):
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        before = await self.w.store.revision()
        big = {"name": "a", "url": "http://127.0.0.1:9/l",
               "content": {"sha256": "0" * 64, "junk": "x" * 70_000}}
        cases = [({"setting": {"ui": {"notes": "x" * 17_000}}}, "entities.setting.ui"),
                 ({"blocklist": {"1": big}}, "entities.blocklist.1")]
        for entities, field in cases:
            r = await self.call("POST", "/api/maintenance/import",
                                dict(doc, entities=entities), 400)
            self.assertEqual(r.json()["details"][0]["field"], field)
            self.assertIn("KiB", r.json()["message"])
        self.assertEqual(await self.w.store.revision(), before)

    async def test_entities_are_stored_as_the_api_stores_them(self):
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        entities = {"rule": {"1": {"pattern": "ADS.Example", "action": "block",
                                   "junk": {"deep": [1, 2]}}}}
        await self.call("POST", "/api/maintenance/import", dict(doc, entities=entities), 200)
        r = await self.call("GET", "/api/rules/1", expect=200)
        self.assertEqual(r.json()["pattern"], "ads.example")
        self.assertEqual((await self.w.store.get("rule", "1")).data,
                         {"pattern": "ads.example", "action": "block", "client_id": None,
                          "enabled": True, "comment": ""})

    async def test_entities_that_conflict_with_each_other_are_refused(self):
        """What the API refuses one write at a time, a restore refuses too."""
        await self.call("POST", "/api/clients", {"name": "laptop",
                                                 "addresses": ["192.168.1.5"]}, 201)
        await self.call("POST", "/api/rules", {"pattern": "a.example", "action": "block",
                                               "client_id": 1}, 201)
        doc = (await self.call("GET", "/api/maintenance/export", expect=200)).json()
        before = await self.w.store.revision()
        client = doc["entities"]["client"]["1"]
        rule = doc["entities"]["rule"]["1"]
        cname = {"domain": "nas.home", "answer": "box.home"}
        cases = [
            ({"rule": {"1": rule, "2": dict(rule, client_id=7)}}, "rule.2", "no client 7"),
            ({"rule": {"1": rule, "2": rule}}, "rule.2", "the same rule as rule 1"),
            # Removing the client its rule (not in the document) belongs to.
            ({"client": {}}, "rule.1", "no client 1"),
            ({"client": {"1": client, "2": dict(client, name="LAPTOP ",
                                                addresses=["10.0.0.1"])}},
             "client.2", "client 1 has this name"),
            ({"client": {"1": client, "2": dict(client, name="phone")}},
             "client.2", "192.168.1.5 belongs to client 1 too"),
            ({"client": {"1": dict(client, blocklists=[3])}}, "client.1", "no blocklist 3"),
            ({"blocklist": {"1": {"name": "a", "url": "http://127.0.0.1:9/l"},
                            "2": {"name": "b", "url": "http://127.0.0.1:9/l"}}},
             "blocklist.2", "blocklist 1 has this URL"),
            ({"rewrite": {"1": cname, "2": dict(cname, answer="10.0.0.2")}},
             "rewrite.1", "a name with a CNAME can have no other answers"),
        ]
        for entities, where, message in cases:
            for path in ("/api/maintenance/import?dry_run=true", "/api/maintenance/import"):
                r = await self.call("POST", path, dict(doc, entities=entities), 400)
                problem = r.json()["details"][0]
                self.assertEqual(problem["field"], f"entities.{where}", (entities, r.json()))
                self.assertIn(message, problem["message"])
        self.assertEqual(await self.w.store.revision(), before)
        # Consistent with what is stored: fine.
        await self.call("POST", "/api/maintenance/import",
                        dict(doc, entities={"rule": {"9": dict(rule, pattern="b.example")}}), 200)
