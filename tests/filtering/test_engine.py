"""
The policy engine against a real store: configuration changes become a new
snapshot (synchronously when no list contents must be loaded), time
boundaries swap snapshots by themselves, list work is cached by content.
"""

from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from sentinel.dns.decision import BLOCK, PASS, PolicySource
from sentinel.filtering import engine as engine_module
from sentinel.filtering import listcache
from sentinel.filtering.engine import PolicyEngine
from tests.filtering.helpers import list_blob, wire
from tests.filtering.storehelp import inline, open_store


class EngineTests(TestCase):
    async def start(self, now=1000.0):
        self.store = await open_store(self)
        self.clock = Clock()
        self.clock.advance(now)
        self.source = PolicySource()
        self.engine = PolicyEngine(self.store, self.clock, self.source, run=inline)
        self.engine.startService()
        self.addCleanup(self.engine.stopService)
        await self.engine.settled()

    def decide(self, name, ip="192.168.1.50"):
        d = self.source.current.decide(ip, wire(name), 1)
        return d.action, d.reason

    async def replace_contents(self, list_id, text):
        """The list's contents become ``text`` (as a download would do); their sha."""
        sha, blob = list_blob(text)

        async def tx(ctx):
            await ctx.put_blob(blob)
            e = await ctx.get("blocklist", list_id)
            await ctx.put("blocklist", list_id, dict(e.data, content={"sha256": sha}))

        await self.store.transact(tx)
        await self.engine.settled()
        return sha

    async def add_list(self, text, **fields):
        sha, blob = list_blob(text)

        async def tx(ctx):
            await ctx.put_blob(blob)
            data = {"name": "l", "url": "http://127.0.0.1/l", "content": {"sha256": sha}}
            data.update(fields)
            return await ctx.create("blocklist", data)

        entity = await self.store.transact(tx)
        await self.engine.settled()
        return int(entity.key)

    async def test_loads_existing_configuration_at_start(self):
        store = await open_store(self)
        await store.create("rule", {"pattern": "ads.example", "action": "block"})
        self.store, self.source = store, PolicySource()
        engine = PolicyEngine(store, Clock(), self.source, run=inline)
        engine.startService()
        self.addCleanup(engine.stopService)
        await engine.settled()
        self.assertEqual(self.decide("x.ads.example"), (BLOCK, "rule:1"))

    async def test_rule_is_enforced_when_the_write_returns(self):
        await self.start()
        await self.store.create("rule", {"pattern": "ads.example", "action": "block"})
        # No waiting: the commit notification rebuilt the snapshot already.
        self.assertEqual(self.decide("ads.example"), (BLOCK, "rule:1"))
        await self.store.delete("rule", 1)
        self.assertEqual(self.decide("ads.example"), (PASS, ""))

    async def test_rule_change_reuses_merged_lists(self):
        await self.start()
        merges = []
        real = listcache.merge
        self.patch(engine_module, "merge", lambda *a: merges.append(a) or real(*a))
        list_id = await self.add_list("ads.example.com\n")
        self.assertEqual(len(merges), 1)
        merged = self.source.current.default.lists
        await self.store.create("rule", {"pattern": "x.example", "action": "block"})
        await self.store.create("client", {"name": "c", "addresses": ["10.0.0.1"]})
        self.assertEqual(len(merges), 1)
        self.assertIs(self.source.current.default.lists, merged)
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))
        self.assertEqual(self.decide("x.example"), (BLOCK, "rule:1"))

    async def test_new_contents_replace_old(self):
        await self.start()
        list_id = await self.add_list("old.example\n")
        sha = await self.replace_contents(list_id, "new.example\n")
        self.assertEqual(self.decide("old.example"), (PASS, ""))
        self.assertEqual(self.decide("new.example"), (BLOCK, f"blocklist:{list_id}"))
        self.assertEqual(set(self.engine.cache.decoded), {sha})

    async def test_old_contents_are_freed_by_the_run_function(self):
        # Freeing a 1-2M-name set on the reactor thread held DNS for 14-33
        # ms; the engine hands what it no longer uses to its thread runner.
        handed = []

        def run(fn, *args):
            if fn is listcache.release:
                handed.append(list(args[0]))
            return inline(fn, *args)

        await self.start()
        self.engine._run = run
        list_id = await self.add_list("old.example\n")
        old = self.source.current.default.lists
        await self.replace_contents(list_id, "new.example\n")
        self.assertTrue(any(any(item is old for item in dropped) for dropped in handed))
        self.assertNotIn(old, self.engine.cache.merged.values())
        self.assertEqual(self.decide("new.example"), (BLOCK, f"blocklist:{list_id}"))

    async def test_missing_blob_skips_that_list_only(self):
        await self.start()
        await self.store.create("blocklist", {"name": "x", "url": "http://127.0.0.1/x",
                                              "content": {"sha256": "0" * 64}})
        good = await self.add_list("ads.example\n")
        await self.store.create("rule", {"pattern": "r.example", "action": "block"})
        await self.engine.settled()
        self.assertEqual(self.decide("ads.example"), (BLOCK, f"blocklist:{good}"))
        self.assertEqual(self.decide("r.example"), (BLOCK, "rule:1"))

    async def test_status_only_change_keeps_the_snapshot(self):
        await self.start()
        list_id = await self.add_list("ads.example\n")
        before = self.source.current
        e = await self.store.get("blocklist", list_id)
        await self.store.put("blocklist", list_id, dict(e.data, status={"checked_at": 1}))
        await self.engine.settled()
        self.assertIs(self.source.current, before)

    async def test_pause_expires_by_itself(self):
        await self.start(now=1000.0)
        await self.store.create("rule", {"pattern": "ads.example", "action": "block"})
        await self.store.put("setting", "protection", {"paused": True, "until": 1060.0})
        self.assertEqual(self.decide("ads.example"), (PASS, "protection:paused"))
        self.clock.advance(59.9)
        self.assertEqual(self.decide("ads.example"), (PASS, "protection:paused"))
        self.clock.advance(0.1)
        self.assertEqual(self.decide("ads.example"), (BLOCK, "rule:1"))

    async def test_a_failing_rebuild_at_a_time_boundary_is_tried_again(self):
        await self.start(now=1000.0)
        await self.store.create("rule", {"pattern": "ads.example", "action": "block"})
        await self.store.put("setting", "protection", {"paused": True, "until": 1060.0})
        plan, fails = engine_module.compiler.Plan, [RuntimeError("a bug")]

        def failing_once(*args):
            if fails:
                raise fails.pop()
            return plan(*args)

        self.patch(engine_module.compiler, "Plan", failing_once)
        self.clock.advance(60)  # the pause ends, but compiling fails
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.decide("ads.example"), (PASS, "protection:paused"))
        self.clock.advance(engine_module.RETRY_DELAY)
        self.assertEqual(self.decide("ads.example"), (BLOCK, "rule:1"))

    async def test_schedule_boundaries_swap_snapshots(self):
        # 1704067200 = Monday 2024-01-01 00:00 UTC
        await self.start(now=1704067200.0 + 8 * 3600 - 1)
        await self.store.put("setting", "filtering", {"time_zone": "UTC"})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30"}]})
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        self.clock.advance(1)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        self.clock.advance(1800 - 1)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        self.clock.advance(1)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        # ...and next Monday again, with nothing but the clock moving.
        self.clock.advance(7 * 86400 - 1800)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))

    async def test_a_clock_step_back_out_of_a_window_lifts_it_at_once(self):
        from sentinel.dns.clocksteps import ClockSteps

        # Monday 08:05 UTC, inside 08:00-08:30; the clock ran an hour ahead.
        await self.start(now=1704067200.0 + 8 * 3600 + 300)
        mono = [0.0]
        steps = ClockSteps(self.clock, monotonic=lambda: mono[0])
        steps.listeners.append(self.engine.clock_stepped)
        steps.check()
        await self.store.put("setting", "filtering", {"time_zone": "UTC"})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30"}]})
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        self.clock.rightNow -= 3600  # 07:05: the window has not begun
        steps.check()
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        mono[0] += 3300
        self.clock.advance(3300)  # 08:00 again
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))

    async def test_overnight_window_across_spring_forward_ends_at_local_seven(self):
        # New York, Saturday 2024-03-09 21:00 EST; clocks jump 02:00 -> 03:00
        # that night: 07:00 EDT is 9 hours of real time later, not 10.
        start = 1710036000.0  # 2024-03-10T02:00Z = 21:00 EST
        await self.start(now=start - 1)
        await self.store.put("setting", "filtering", {"time_zone": "America/New_York"})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["sat"], "start": "21:00", "end": "07:00"}]})
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        self.clock.advance(1)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        self.clock.advance(9 * 3600 - 1)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        self.clock.advance(1)  # 07:00 EDT
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))

    async def test_changing_the_time_zone_moves_an_active_window_at_once(self):
        # Monday 08:10 UTC = 09:10 in Berlin; window 08:00-08:30.
        await self.start(now=1704067200.0 + 8 * 3600 + 600)
        await self.store.put("setting", "filtering", {"time_zone": "UTC"})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30"}]})
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (BLOCK, "client:1:schedule"))
        await self.store.put("setting", "filtering", {"time_zone": "Europe/Berlin"})
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        await self.store.put("setting", "filtering", {"time_zone": "Asia/Kathmandu"})  # 13:55
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        # Next Monday 08:00 in Kathmandu (+05:45) is 02:15 UTC.
        self.assertEqual(self.engine.status()["next_change"],
                         1704067200.0 + 7 * 86400 + 2 * 3600 + 900)

    async def test_a_late_boundary_timer_computes_the_state_of_its_time(self):
        # The reactor was busy (or the machine suspended) across a whole
        # window: the timer runs once, late, and sets the one after.
        monday = 1704067200.0
        await self.start(now=monday + 8 * 3600 - 1)
        await self.store.put("setting", "filtering", {"time_zone": "UTC"})
        await self.store.put("setting", "protection", {"paused": True,
                                                       "until": self.clock.seconds()})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30"}]})
        self.assertFalse(self.engine.status()["paused"])  # a pause ending now is over
        self.clock.advance(2 * 3600)
        self.assertEqual(self.decide("a.example", "192.168.1.7"), (PASS, ""))
        next_monday = monday + 7 * 86400 + 8 * 3600
        self.assertEqual(self.engine.status()["next_change"], next_monday)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [next_monday])
        # (no busy loop: nothing due now)

    async def test_a_lists_window_starts_on_time_when_merging_takes_a_while(self):
        from twisted.internet.task import deferLater

        slow = []

        merges = []

        def run(fn, *args):  # merging takes 2 s once slow
            if slow and fn is engine_module.merge:
                merges.append(args[0])
                return deferLater(self.clock, 2.0, fn, *args)
            return inline(fn, *args)

        self.patch(engine_module, "in_thread", run)
        monday_8 = 1704067200.0 + 8 * 3600
        self.store = await open_store(self)
        self.clock = Clock()
        self.clock.advance(monday_8 - 120)
        self.source = PolicySource()
        self.engine = PolicyEngine(self.store, self.clock, self.source, run=run)
        self.engine.startService()
        self.addCleanup(self.engine.stopService)
        await self.engine.settled()
        await self.store.put("setting", "filtering", {"time_zone": "UTC"})
        await self.add_list("ads.example\n")
        social = await self.add_list("social.example\n", **{"global": False})
        games = await self.add_list("games.example\n", **{"global": False})
        await self.store.create("client", {
            "name": "tablet", "addresses": ["192.168.1.7"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30",
                           "block": "lists", "blocklists": [social]}]})
        await self.engine.settled()
        # Contents come from the store at once (the clock alone moves here).
        blobs = {}
        for text in ("ads.example\n", "social.example\n", "games.example\n"):
            sha, blob = list_blob(text)
            blobs[sha] = blob
        self.patch(self.store, "get_blob", lambda sha: succeed(blobs.get(sha)))
        slow.append(True)
        self.clock.advance(60)  # 07:59, engine_module.WARM_AHEAD before 08:00
        self.clock.advance(2)
        # A second client with its own window, added after the first was merged.
        await self.store.create("client", {
            "name": "console", "addresses": ["192.168.1.8"],
            "schedules": [{"days": ["mon"], "start": "08:00", "end": "08:30",
                           "block": "lists", "blocklists": [games]}]})
        for _ in range(20):
            self.clock.advance(2)
        self.assertEqual(len(merges), 2)  # each window's set once, none again
        self.clock.advance(18)  # 08:00
        self.assertEqual(self.decide("social.example", "192.168.1.7"),
                         (BLOCK, f"blocklist:{social}"))
        self.assertEqual(self.decide("ads.example", "192.168.1.7"), (BLOCK, "blocklist:1"))
        self.assertEqual(self.decide("games.example", "192.168.1.8"),
                         (BLOCK, f"blocklist:{games}"))
        self.assertEqual(len(merges), 2)

    async def test_invalid_entity_from_sync_is_skipped(self):
        await self.start()
        await self.store.create("rule", {"pattern": "ok.example", "action": "block"})
        await self.store.create("rule", {"pattern": 42})
        await self.store.create("client", {"addresses": "nonsense"})
        self.assertEqual(self.decide("ok.example"), (BLOCK, "rule:1"))

    async def test_store_trouble_keeps_the_snapshot_in_force(self):
        await self.start()
        first = await self.add_list("ads.example\n")
        sha, blob = list_blob("new.example\n")
        real_get_blob = self.store.get_blob
        calls = []

        def broken(wanted):
            calls.append(wanted)
            raise RuntimeError("database is down")

        self.patch(self.store, "get_blob", broken)

        async def tx(ctx):
            await ctx.put_blob(blob)
            e = await ctx.get("blocklist", first)
            await ctx.put("blocklist", first, dict(e.data, content={"sha256": sha}))

        await self.store.transact(tx)
        # The old contents stay enforced while the new ones cannot be read...
        self.assertEqual(self.decide("ads.example"), (BLOCK, f"blocklist:{first}"))
        self.assertEqual(calls, [sha])
        self.patch(self.store, "get_blob", real_get_blob)
        self.clock.advance(engine_module.RETRY_DELAY)  # ...and it tries again.
        await self.engine.settled()
        self.assertEqual(self.decide("ads.example"), (PASS, ""))
        self.assertEqual(self.decide("new.example"), (BLOCK, f"blocklist:{first}"))
