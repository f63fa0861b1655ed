"""
A leader that went back in time (its database restored from an older copy:
same history id, lower revision) and then moved on past the follower's
revision: its "changes since R" are not the changes the follower is missing.
The follower must keep refusing (LEADER_BEHIND) until an admin resyncs --
before, it took the incremental answer once the leader's revision was higher
again, and silently kept what the restored leader no longer had.
"""

from sentinel.cluster.plan import MARKER
from sentinel.cluster.status import SyncError
from tests.cluster.pair import SyncTestCase
from tests.cluster.support import live


class RestoredLeaderTests(SyncTestCase):
    async def rule(self, pattern):
        return await self.leader.store.create("rule", {"pattern": pattern, "action": "block"})

    async def test_a_leader_that_went_back_is_refused_until_resync(self):
        await self.join()
        await self.rule("kept.example")
        await self.sync()
        # The follower took revisions from the old timeline that the restored
        # leader no longer has (its "gone.example" rule, created after the
        # backup): as if the follower had synced them.
        gone_key = (await self.rule("gone.example")).key
        await self.sync()
        self.assertIn(("rule", gone_key), await live(self.follower))
        marker = await self.follower.store.get_local(MARKER)
        await self.follower.store.set_local(MARKER, dict(marker, revision=marker["revision"] + 3))
        self.follower.client._marker_epoch = None  # (the client caches it)
        await self.leader.store.delete("rule", gone_key)  # what the restore took back
        with self.assertRaises(SyncError) as caught:
            await self.sync()
        self.assertEqual(caught.exception.code, "LEADER_BEHIND")

        # The restored leader moves on, past the follower's revision.
        for i in range(6):
            await self.rule(f"new{i}.example")
        self.assertGreater(await self.leader.store.revision(), marker["revision"] + 3)
        with self.assertRaises(SyncError) as caught:
            await self.sync()
        self.assertEqual(caught.exception.code, "LEADER_BEHIND")
        self.assertIn("went back to revision", caught.exception.message)
        self.assertIn(("rule", gone_key), await live(self.follower))  # nothing applied

        # A follower restarting remembers it (it is in the stored position).
        self.follower.client._marker_epoch = None
        with self.assertRaises(SyncError):
            await self.sync()

        # resync: the follower becomes an exact copy, and follows again.
        self.follower.client.force_next = True
        await self.sync()
        self.assertEqual(await live(self.follower), await live(self.leader))
        await self.rule("after.example")
        await self.sync()
        self.assertEqual(await live(self.follower), await live(self.leader))
