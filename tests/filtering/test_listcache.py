"""
Merging decoded blocklists into the sharded name sets the policy looks up,
and letting go of them again.
"""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.filtering import policy
from sentinel.filtering.listcache import ListCache, decode_blob, merge, release
from sentinel.filtering.names import to_key
from sentinel.filtering.policy import name_hash
from tests.filtering.helpers import list_blob


def names(prefix, n):
    return [f"{prefix}{i}.host{i % 13}.example" for i in range(n)]


class MergeTests(SynchronousTestCase):
    def setUp(self):
        # Small shards, so that a few thousand names need many of them.
        self.patch(policy, "SHARD_TARGET", 64)
        first, second = names("a", 6000), names("b", 6000)
        self.first, self.second = first, second
        sha1, blob1 = list_blob("\n".join(first + second[:1000]))
        sha2, blob2 = list_blob("\n".join(second + ["@@||" + first[0] + "^"]))
        self.decoded = {sha1: decode_blob(blob1), sha2: decode_blob(blob2)}
        self.key = ((1, sha1), (2, sha2))

    def get(self, merged, name):
        return merged.get(name_hash(to_key(name)))

    def test_no_dict_grows_past_the_shard_size(self):
        # Growing one dict of 1-2M names re-hashed it in one step holding
        # the GIL for 80-150 ms (DNS waited); shards of ~SHARD_TARGET names
        # re-hash in about a millisecond.
        merged = merge(self.key, self.decoded)
        self.assertEqual(merged.count, 12_000)
        self.assertGreater(len(merged.dicts), 64)
        self.assertLessEqual(max(map(len, merged.dicts)), 2 * policy.SHARD_TARGET)

    def test_every_name_is_found_and_the_lowest_list_wins(self):
        merged = merge(self.key, self.decoded)
        self.assertTrue(merged.has_allows)
        self.assertEqual(self.get(merged, self.first[0]), -2)  # an exception beats a block
        self.assertTrue(all(self.get(merged, n) == 1 for n in self.first[1:]))
        self.assertTrue(all(self.get(merged, n) == 1 for n in self.second[:1000]))
        self.assertTrue(all(self.get(merged, n) == 2 for n in self.second[1000:]))
        self.assertIsNone(self.get(merged, "not.listed.example"))
        sufs = [to_key("deep.sub." + self.second[-1]), to_key("sub." + self.second[-1]),
                to_key(self.second[-1])]
        self.assertEqual(merged.match(sufs), 2)

    def test_small_lists_share_one_dict(self):
        merged = merge(((1, "x"),), {"x": ([[name_hash(b"\x01a\x02ex")]], [])})
        self.assertEqual(len(merged.dicts), 1)
        self.assertEqual(len(set(map(id, merged.slots))), 1)

    def test_release_frees_only_what_nothing_else_uses(self):
        cache = ListCache()
        cache.decoded.update(self.decoded)
        merged = cache.merged[self.key] = merge(self.key, self.decoded)
        in_use = cache.merged[self.key[:1]] = merge(self.key[:1], self.decoded)
        dropped = cache.retain({self.key[:1]}, {self.key[0][1]})
        self.assertEqual(len(dropped), 2)  # the two-list set and the second list's names
        del merged
        release(dropped)
        self.assertEqual(dropped, [])
        self.assertEqual(list(cache.merged), [self.key[:1]])
        # What is still used answers as before.
        self.assertEqual(self.get(in_use, self.first[0]), 1)
        self.assertEqual(in_use.count, 7000)
        self.assertEqual(cache.domains(), 7000)
