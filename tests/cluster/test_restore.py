"""
A backup restored in a cluster: refused on a follower (409
FOLLOWER_READONLY, nothing changed), and on the leader one forward
revision that followers converge to by the ordinary incremental sync.
"""

from sentinel.api.backup_checks import default_validators
from sentinel.api.maintenance import MaintenanceApi
from sentinel.filtering.model import check
from tests.cluster.pair import SyncTestCase
from tests.cluster.support import live


def rule(pattern):
    return check("rule", {"pattern": pattern, "action": "block"})


class RestoreInClusterTests(SyncTestCase):
    def areas(self, node):
        return [MaintenanceApi(node.store, node.secrets, default_validators(), self.clock)]

    async def test_refused_on_a_follower_and_synced_from_the_leader(self):
        for pattern in ("one.example", "two.example"):
            await self.leader.store.create("rule", rule(pattern))
        await self.join()
        await self.sync()
        status, backup = await self.call(self.to_leader, "GET", "/api/maintenance/export")
        self.assertEqual(status, 200)

        follower_before = await self.follower.store.revision()
        for path in ("/api/maintenance/import?dry_run=true", "/api/maintenance/import"):
            status, body = await self.call(self.to_follower, "POST", path, backup)
            self.assertEqual((status, body["error"]), (409, "FOLLOWER_READONLY"))
        self.assertEqual(await self.follower.store.revision(), follower_before)

        # Changed since the backup (and synced), then restored on the leader.
        await self.leader.store.delete("rule", "2")
        await self.leader.store.create("rule", rule("three.example"))
        await self.sync()
        before = await self.leader.store.revision()
        status, body = await self.call(self.to_leader, "POST", "/api/maintenance/import", backup)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["revision"], before + 1)  # forward, never back to the backup's
        self.assertGreater(body["revision"], backup["revision"])
        applied = await self.sync()
        self.assertEqual(applied.mode, "changes")
        self.assertEqual(await live(self.follower), await live(self.leader))
        self.assertEqual(sorted(e.key for e in await self.follower.store.list("rule")),
                         ["1", "2"])
        # A rule created afterwards on the leader gets a new id, never a restored one.
        created = await self.leader.store.create("rule", rule("four.example"))
        self.assertEqual(created.key, "4")
