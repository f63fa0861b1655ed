"""
A backup restored on another node filters as the original: blocklists come
back with their contents downloaded again (the backup holds no blob), and
contents a restore drops are released.
"""

import json
from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from sentinel.api.backup_checks import default_validators
from sentinel.api.maintenance import MaintenanceApi
from sentinel.dns.decision import BLOCK, PASS, REWRITE, PolicySource
from sentinel.filtering.engine import PolicyEngine
from sentinel.filtering.model import check
from sentinel.filtering.refresher import BlocklistRefresher
from sentinel.filtering.restore import BlocklistRestore
from tests.filtering.helpers import wire
from tests.filtering.listserver import ListResource
from tests.filtering.storehelp import inline, open_store

HOSTS = "0.0.0.0 ads.example.com\n0.0.0.0 track.example.net\n"
NAMES = ("ads.example.com", "track.example.net", "rule.example", "fine.example", "nas.home",
         "kid.example", "new.example")
CLIENTS = ("192.168.1.2", "192.168.1.9")


class NoSecrets:
    async def names(self):
        return []


class Node:
    """One node's store, policy engine, refresher and backup API."""

    @classmethod
    async def start(cls, testcase, http):
        node = cls()
        node.store = await open_store(testcase)
        node.clock = Clock()
        node.clock.advance(1_000_000)
        node.source = PolicySource()
        node.engine = PolicyEngine(node.store, node.clock, node.source, run=inline)
        node.engine.startService()
        testcase.addCleanup(node.engine.stopService)
        node.refresher = BlocklistRefresher(node.store, node.clock, http)
        node.refresher.startService()
        testcase.addCleanup(node.refresher.stopService)
        node.api = MaintenanceApi(node.store, NoSecrets(), default_validators(), node.clock,
                                  {"blocklist": BlocklistRestore()})
        await node.settled()
        return node

    async def settled(self):
        await self.refresher.checking
        for list_id in (1, 2):
            if self.refresher.refreshing(list_id):
                await self.refresher.refresh(list_id)
        await self.engine.settled()

    def decisions(self):
        out = {}
        for ip in CLIENTS:
            for name in NAMES:
                d = self.source.current.decide(ip, wire(name), 1)
                out[ip, name] = (d.action, d.reason, tuple(map(str, d.answers or ())))
        return out

    async def export(self):
        # The backup as the file the user downloads (bytes: built off the reactor).
        return json.loads((await self.api.export(SimpleNamespace())).body)

    async def restore(self, document, dry_run=False):
        call = SimpleNamespace(body=document, query={"dry_run": dry_run})
        result = await self.api.restore(call)
        await self.settled()
        return result


class RestoreTests(TestCase):
    def action(self, name, node=None):
        return (node or self.a).decisions()["192.168.1.2", name][0]

    async def setUp(self):
        self.lists = ListResource()
        self.lists.serve("/hosts", HOSTS, etag='"v1"')
        self.http = StubTreq(self.lists)
        self.a = await Node.start(self, self.http)
        await self.a.store.create("blocklist", {"name": "hosts", "url": "http://lists.test/hosts",
                                                "mode": "enabled", "global": True})
        await self.a.store.create("rule", check("rule", {"pattern": "rule.example",
                                                         "action": "block"}))
        await self.a.store.create("client", check("client", {"name": "kid",
                                                             "addresses": ["192.168.1.9"]}))
        await self.a.store.create("rule", check("rule", {"pattern": "kid.example",
                                                         "action": "block", "client_id": 1}))
        await self.a.store.create("rewrite", check("rewrite", {"domain": "nas.home",
                                                               "answer": "192.168.1.20"}))
        await self.a.settled()
        decisions = self.a.decisions()
        self.assertEqual([decisions[ip, name][0] for ip, name in (
            ("192.168.1.2", "ads.example.com"), ("192.168.1.2", "nas.home"),
            ("192.168.1.9", "kid.example"), ("192.168.1.2", "kid.example"))],
            [BLOCK, REWRITE, BLOCK, PASS])

    async def test_a_fresh_node_filters_as_the_backed_up_one(self):
        document = await self.a.export()
        b = await Node.start(self, self.http)
        self.assertEqual(self.action("ads.example.com", b), PASS)
        result = await b.restore(document)
        self.assertEqual(result["changes"]["blocklist"]["added"], ["1"])
        # Downloaded at once, in full (the backup's ETag would get "not modified").
        self.assertEqual(self.lists.requests[-1], ("/hosts", None, None))
        self.assertEqual(b.decisions(), self.a.decisions())
        self.assertEqual((await b.export())["entities"]["blocklist"]["1"]["content"]["sha256"],
                         document["entities"]["blocklist"]["1"]["content"]["sha256"])
        # Restoring the same backup again is no change (the contents are here now).
        result = await b.restore(document, dry_run=True)
        self.assertEqual(result["changes"]["blocklist"],
                         {"added": [], "changed": [], "removed": []})

    async def test_a_list_refreshed_since_the_backup_keeps_its_newer_contents(self):
        document = await self.a.export()
        self.lists.serve("/hosts", HOSTS + "0.0.0.0 new.example\n", etag='"v2"')
        await self.a.refresher.refresh(1)  # the backup's contents are released
        await self.a.settled()
        after = await self.a.export()
        requests = len(self.lists.requests)
        result = await self.a.restore(document)
        self.assertEqual(result["changes"]["blocklist"],
                         {"added": [], "changed": [], "removed": []})
        self.assertEqual(len(self.lists.requests), requests)  # nothing to download again
        self.assertEqual((await self.a.export())["entities"], after["entities"])
        self.assertEqual(self.action("new.example"), BLOCK)  # never a gap

    async def test_contents_a_restore_drops_are_released(self):
        document = await self.a.export()
        self.assertEqual(len(await self.a.store.read(lambda ctx: ctx.blob_shas())), 1)
        requests = len(self.lists.requests)
        result = await self.a.restore(document)  # contents here: kept, nothing downloaded
        self.assertEqual(result["unchanged"], 5)
        self.assertEqual(len(self.lists.requests), requests)
        await self.a.restore(dict(document, entities={"blocklist": {}}))
        self.assertEqual(await self.a.store.read(lambda ctx: ctx.blob_shas()), set())
        self.assertEqual(self.action("ads.example.com"), PASS)
