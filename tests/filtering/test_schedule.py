from datetime import datetime
from zoneinfo import ZoneInfo

from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import BLOCK, PASS
from sentinel.filtering import schedule as sched
from sentinel.filtering.schedule import BadSchedule, check, evaluate, zone
from tests.filtering.helpers import World, wire

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def ts(text, tz=UTC):
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


class EvaluateTests(SynchronousTestCase):
    # 2024-01-01 is a Monday.
    def test_window_on_chosen_days(self):
        s = {"days": ["mon"], "start": "08:00", "end": "12:00:30"}
        self.assertEqual(evaluate(s, UTC, ts("2024-01-01T07:59:59")),
                         (False, ts("2024-01-01T08:00")))
        self.assertEqual(evaluate(s, UTC, ts("2024-01-01T08:00")),
                         (True, ts("2024-01-01T12:00:30")))
        self.assertEqual(evaluate(s, UTC, ts("2024-01-01T12:00:30")),
                         (False, ts("2024-01-08T08:00")))
        self.assertFalse(evaluate(s, UTC, ts("2024-01-02T09:00"))[0])

    def test_overnight_window_belongs_to_its_start_day(self):
        s = {"days": ["mon"], "start": "22:00", "end": "07:00"}
        self.assertTrue(evaluate(s, UTC, ts("2024-01-02T06:59"))[0])  # Tuesday morning
        self.assertEqual(evaluate(s, UTC, ts("2024-01-02T06:59"))[1], ts("2024-01-02T07:00"))
        self.assertFalse(evaluate(s, UTC, ts("2024-01-02T23:00"))[0])  # Tuesday night
        self.assertFalse(evaluate(s, UTC, ts("2024-01-01T06:00"))[0])  # Monday morning

    def test_equal_start_and_end_is_the_whole_day(self):
        s = {"days": ["sat"], "start": "00:00", "end": "00:00"}
        self.assertEqual(evaluate(s, UTC, ts("2024-01-06T13:00")),
                         (True, ts("2024-01-07T00:00")))

    def test_time_zone_is_honoured(self):
        s = {"days": ["mon"], "start": "08:00", "end": "09:00"}
        self.assertTrue(evaluate(s, BERLIN, ts("2024-01-01T07:30"))[0])  # 08:30 in Berlin
        self.assertFalse(evaluate(s, UTC, ts("2024-01-01T07:30"))[0])

    def test_daylight_saving_gap_and_repeat(self):
        # 2024-03-31 (Sunday): Berlin clocks jump 02:00 -> 03:00.
        s = {"days": ["sun"], "start": "02:30", "end": "04:00"}
        self.assertEqual(evaluate(s, BERLIN, ts("2024-03-31T00:30"))[1],
                         ts("2024-03-31T01:00"))  # 03:00 CEST, when the clock jumps
        # 2024-10-27 (Sunday): 03:00 -> 02:00; 01:00-04:00 lasts four hours.
        s = {"days": ["sun"], "start": "01:00", "end": "04:00"}
        start = evaluate(s, BERLIN, ts("2024-10-26T22:00"))[1]
        end = evaluate(s, BERLIN, start)[1]
        self.assertEqual(end - start, 4 * 3600)

    def test_garbage_host_time_zone_files_mean_utc(self):
        import builtins
        import io
        import os

        real_open = builtins.open

        def fake_open(path, *args, **kwargs):
            if path == "/etc/timezone":  # binary garbage, as open() would give it
                raw = io.BytesIO(b"\xff\xfe\x00garbage" + b"x" * 100000)
                mode = args[0] if args else kwargs.get("mode", "r")
                return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")
            return real_open(path, *args, **kwargs)

        self.patch(builtins, "open", fake_open)
        self.patch(os, "readlink", lambda path: "/nowhere/zoneinfo/Not/AZone")
        self.patch(os, "environ", {})
        self.assertEqual(sched.host_zone_name(), "UTC")

    def test_bad_schedules(self):
        for bad in [{"days": [], "start": "01:00", "end": "02:00"},
                    {"days": ["xyz"], "start": "01:00", "end": "02:00"},
                    {"days": ["mon"], "start": "24:00", "end": "02:00"},
                    {"days": ["mon"], "start": "1:00", "end": "02:00"}]:
            with self.assertRaises(BadSchedule):
                check(bad)
        with self.assertRaises(BadSchedule):
            zone("Mars/Olympus")
        with self.assertRaises(BadSchedule):
            zone("../../etc/passwd")


class ScheduledPolicyTests(SynchronousTestCase):
    def setUp(self):
        self.world = World()
        self.world.put("setting", "filtering", {"time_zone": "Europe/Berlin"})
        self.world.blocklist(1, "social.example\n", mode="enabled", **{"global": False})
        self.world.put("client", 1, {"name": "tablet", "addresses": ["192.168.1.7"],
                                     "schedules": [
                                         {"days": ["mon", "tue"], "start": "21:00",
                                          "end": "07:00", "block": "all"},
                                         {"days": ["wed"], "start": "15:00", "end": "17:00",
                                          "block": "lists", "blocklists": [1]}]})

    def reason(self, when, name="a.example"):
        d = self.world.policy(ts(when, ZoneInfo("Europe/Berlin"))).decide(
            "192.168.1.7", wire(name), 1)
        return d.action, d.reason

    def test_block_all_window(self):
        self.assertEqual(self.reason("2024-01-01T20:59:59"), (PASS, ""))
        self.assertEqual(self.reason("2024-01-01T21:00"), (BLOCK, "client:1:schedule"))
        self.assertEqual(self.reason("2024-01-02T06:59:59"), (BLOCK, "client:1:schedule"))
        self.assertEqual(self.reason("2024-01-02T07:00"), (PASS, ""))
        self.assertEqual(self.world.plan(ts("2024-01-01T20:00", BERLIN)).next_change,
                         ts("2024-01-01T21:00", BERLIN))

    def test_block_chosen_lists_window(self):
        self.assertEqual(self.reason("2024-01-03T14:59", "social.example"), (PASS, ""))
        self.assertEqual(self.reason("2024-01-03T15:00", "social.example"),
                         (BLOCK, "blocklist:1"))
        self.assertEqual(self.reason("2024-01-03T15:00", "other.example"), (PASS, ""))
        self.assertEqual(self.reason("2024-01-03T17:00", "social.example"), (PASS, ""))


class EdgeTests(SynchronousTestCase):
    # 2024-01-01 is a Monday.
    def test_window_ending_at_midnight_belongs_to_its_start_day(self):
        s = {"days": ["mon"], "start": "21:00", "end": "00:00"}
        self.assertEqual(evaluate(s, UTC, ts("2024-01-01T23:59:59")),
                         (True, ts("2024-01-02T00:00")))
        self.assertFalse(evaluate(s, UTC, ts("2024-01-02T00:00"))[0])
        self.assertFalse(evaluate(s, UTC, ts("2023-12-31T23:00"))[0])  # Sunday night

    def test_seconds_are_exact(self):
        s = {"days": list(sched.DAYS), "start": "07:59:59", "end": "08:00:01"}
        self.assertEqual(evaluate(s, UTC, ts("2024-01-03T07:59:58")),
                         (False, ts("2024-01-03T07:59:59")))
        self.assertEqual(evaluate(s, UTC, ts("2024-01-03T08:00")),
                         (True, ts("2024-01-03T08:00:01")))

    def test_school_nights_only(self):
        s = {"days": ["sun", "mon", "tue", "wed", "thu"], "start": "21:00", "end": "07:00"}
        self.assertTrue(evaluate(s, UTC, ts("2024-01-05T06:59"))[0])  # Thursday's night
        self.assertFalse(evaluate(s, UTC, ts("2024-01-05T21:30"))[0])  # Friday night
        self.assertFalse(evaluate(s, UTC, ts("2024-01-06T06:00"))[0])
        self.assertTrue(evaluate(s, UTC, ts("2024-01-07T21:00"))[0])  # Sunday night

    def test_one_thirty_to_two_thirty_on_both_changes(self):
        ny = ZoneInfo("America/New_York")
        s = {"days": ["sun"], "start": "01:30", "end": "02:30"}
        # 2024-03-10: 02:00 -> 03:00; 02:30 does not exist, the window ends at 03:00 EDT.
        self.assertEqual(evaluate(s, ny, ts("2024-03-10T01:30", ny)),
                         (True, ts("2024-03-10T03:00", ny)))
        # 2024-11-03: 02:00 -> 01:00; from the first 01:30 until 02:30 (two hours).
        start = ts("2024-11-03T05:30")  # 01:30 EDT
        self.assertEqual(evaluate(s, ny, start - 1), (False, start))
        self.assertEqual(evaluate(s, ny, start + 3600), (True, start + 2 * 3600))  # 01:30 EST


class UnusualTimeZoneTests(SynchronousTestCase):
    def test_a_day_skipped_whole_blocks_nothing_on_the_next_day(self):
        # Pacific/Apia skipped Friday 2011-12-30: a Friday window did not
        # happen that week; it must not land on Saturday morning instead.
        apia = ZoneInfo("Pacific/Apia")
        s = {"days": ["fri"], "start": "10:00", "end": "12:00"}
        self.assertFalse(evaluate(s, apia, ts("2011-12-31T09:00", apia))[0])
        self.assertFalse(evaluate(s, apia, ts("2011-12-31T11:00", apia))[0])

    def test_half_hour_daylight_saving_gap(self):
        # Australia/Lord_Howe: 2024-10-06 02:00 -> 02:30 (+10:30 -> +11).
        lh = ZoneInfo("Australia/Lord_Howe")
        s = {"days": ["sun"], "start": "02:10", "end": "03:00"}
        self.assertEqual(evaluate(s, lh, ts("2024-10-06T01:00", lh)),
                         (False, ts("2024-10-06T02:30", lh)))
        self.assertEqual(evaluate(s, lh, ts("2024-10-06T02:30", lh)),
                         (True, ts("2024-10-06T03:00", lh)))

    def test_without_time_zone_data_schedules_run_in_utc(self):
        # A minimal image (no /usr/share/zoneinfo, no tzdata package): no
        # zone loads, not even UTC.  The policy must still be built.
        from zoneinfo import ZoneInfoNotFoundError

        def no_data(name):
            raise ZoneInfoNotFoundError(name)

        self.patch(sched, "ZoneInfo", no_data)
        sched.zone.cache_clear()
        self.addCleanup(sched.zone.cache_clear)
        world = World()
        world.put("setting", "filtering", {"time_zone": "Europe/Berlin"})
        world.put("client", 1, {"name": "tablet", "addresses": ["192.168.1.7"],
                                "schedules": [{"days": ["mon"], "start": "21:00",
                                               "end": "22:00"}]})
        policy = world.policy(ts("2024-01-01T21:30"))
        self.assertEqual(policy.decide("192.168.1.7", wire("a.example"), 1).action, BLOCK)
        self.assertEqual(policy.info["time_zone"], "UTC")
        with self.assertRaises(BadSchedule) as caught:
            zone("Europe/Berlin")
        self.assertIn("no time zone data (install the tzdata package)", str(caught.exception))
