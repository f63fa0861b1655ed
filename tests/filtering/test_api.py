"""
The filtering API over HTTP (in memory): validation, duplicates, unknown
ids, references, and that a change is enforced by the policy as soon as
the request that made it has been answered.
"""

import re

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from sentinel.dns.decision import ALLOW, BLOCK, PASS, REWRITE
from tests.filtering.apihelp import ApiHarness


class ApiCase(TestCase):
    timeout = 15

    async def setUp(self):
        self.api = await ApiHarness().start(self)

    async def ok(self, method, path, body=None, status=200):
        r = await self.api.call(method, path, body)
        self.assertEqual(r.code, status, r.body)
        return r.json() if r.body else None

    async def error(self, method, path, body, status, code, field=None):
        r = await self.api.call(method, path, body)
        self.assertEqual(r.code, status, r.body)
        out = r.json()
        self.assertEqual(out["error"], code, out)
        if field is not None:
            self.assertIn(field, [d["field"] for d in out.get("details", [])], out)
        return out


class AuthTests(ApiCase):
    async def test_every_filtering_endpoint_requires_an_admin(self):
        specs = [spec for spec, _ in self.api.site.endpoints]
        self.assertGreater(len(specs), 30)
        for spec in specs:
            r = await self.api.call(spec.method, re.sub(r"\{\w+\}", "1", spec.path),
                                    auth=False)
            self.assertEqual((spec.method, spec.path, r.code),
                             (spec.method, spec.path, 401), r.body)
            self.assertEqual(spec.auth, "admin")


class RuleApiTests(ApiCase):
    async def test_rule_is_enforced_when_the_answer_arrives(self):
        rule = await self.ok("POST", "/api/rules", {"pattern": "Ads.Example.com.",
                                                    "action": "block"}, 201)
        self.assertEqual(rule, {"id": 1, "pattern": "ads.example.com", "action": "block",
                                "client_id": None, "enabled": True, "comment": ""})
        self.assertEqual(self.api.decide("x.ads.example.com"), (BLOCK, "rule:1"))
        await self.ok("PATCH", "/api/rules/1", {"enabled": False})
        self.assertEqual(self.api.decide("x.ads.example.com"), (PASS, ""))
        await self.ok("PUT", "/api/rules/1", {"pattern": "*.ads.example.com",
                                              "action": "allow"})
        self.assertEqual(self.api.decide("x.ads.example.com"), (ALLOW, "rule:1"))
        await self.ok("DELETE", "/api/rules/1", status=204)
        self.assertEqual(self.api.decide("x.ads.example.com"), (PASS, ""))

    async def test_validation_duplicates_and_unknown_ids(self):
        await self.error("POST", "/api/rules", {"pattern": "a b", "action": "block"}, 400,
                         "VALIDATION_ERROR", "pattern")
        await self.error("POST", "/api/rules", {"pattern": "a.com", "action": "deny"}, 400,
                         "VALIDATION_ERROR", "action")
        await self.error("POST", "/api/rules", {"pattern": "a.com"}, 400, "VALIDATION_ERROR")
        await self.error("POST", "/api/rules", {"pattern": "a.com", "action": "block",
                                                "client_id": 9}, 400, "VALIDATION_ERROR",
                         "client_id")
        await self.ok("POST", "/api/rules", {"pattern": "a.com", "action": "block"}, 201)
        await self.error("POST", "/api/rules", {"pattern": "A.COM", "action": "block"}, 409,
                         "DUPLICATE")
        await self.ok("POST", "/api/rules", {"pattern": "a.com", "action": "allow"}, 201)
        for bad in ("/api/rules/99", "/api/rules/abc", "/api/rules/0"):
            await self.error("GET", bad, None, 404, "NOT_FOUND")
            await self.error("DELETE", bad, None, 404, "NOT_FOUND")
        await self.error("PATCH", "/api/rules/99", {"enabled": False}, 404, "NOT_FOUND")

    async def test_list_filters(self):
        await self.ok("POST", "/api/clients", {"name": "tv", "addresses": ["10.0.0.5"]}, 201)
        await self.ok("POST", "/api/rules", {"pattern": "a.com", "action": "block"}, 201)
        await self.ok("POST", "/api/rules", {"pattern": "b.com", "action": "block",
                                             "client_id": 1}, 201)
        everything = await self.ok("GET", "/api/rules")
        self.assertEqual([r["pattern"] for r in everything["items"]], ["a.com", "b.com"])
        mine = await self.ok("GET", "/api/rules?client_id=1")
        self.assertEqual([r["pattern"] for r in mine["items"]], ["b.com"])
        globals_ = await self.ok("GET", "/api/rules?client_id=0")
        self.assertEqual([r["pattern"] for r in globals_["items"]], ["a.com"])
        found = await self.ok("GET", "/api/rules?q=B.C")
        self.assertEqual([r["pattern"] for r in found["items"]], ["b.com"])


class ClientApiTests(ApiCase):
    async def test_client_lifecycle_and_kill_switch(self):
        c = await self.ok("POST", "/api/clients", {"name": "Tablet",
                                                   "addresses": ["192.168.1.7", "fd00::7/128"]},
                          201)
        self.assertEqual(c["addresses"], ["192.168.1.7", "fd00::7"])
        self.assertTrue(c["use_global_blocklists"])
        await self.ok("POST", "/api/rules", {"pattern": "games.example", "action": "block",
                                             "client_id": 1}, 201)
        self.assertEqual(self.api.decide("games.example", "192.168.1.7"), (BLOCK, "rule:1"))
        self.assertEqual(self.api.decide("games.example"), (PASS, ""))
        await self.ok("PATCH", "/api/clients/1", {"kill_switch": True})
        self.assertEqual(self.api.decide("any.example", "fd00::7"), (BLOCK, "client:1:paused"))
        await self.ok("DELETE", "/api/clients/1", status=204)
        self.assertEqual((await self.ok("GET", "/api/rules"))["items"], [])
        self.assertEqual(self.api.decide("any.example", "fd00::7"), (PASS, ""))

    async def test_client_validation(self):
        await self.error("POST", "/api/clients", {"name": "x", "addresses": ["300.1.1.1"]},
                         400, "VALIDATION_ERROR", "addresses.0")
        await self.error("POST", "/api/clients", {"name": "x", "addresses": ["10.0.0.1/24"]},
                         400, "VALIDATION_ERROR", "addresses.0")
        await self.error("POST", "/api/clients", {"name": "x", "addresses": []}, 400,
                         "VALIDATION_ERROR")
        await self.error("POST", "/api/clients", {
            "name": "x", "addresses": ["10.0.0.1"],
            "schedules": [{"days": ["mon"], "start": "25:00", "end": "07:00"}]},
            400, "VALIDATION_ERROR")
        await self.error("POST", "/api/clients", {
            "name": "x", "addresses": ["10.0.0.1"],
            "schedules": [{"days": ["mon"], "start": "21:00", "end": "07:00",
                           "block": "lists"}]}, 400, "VALIDATION_ERROR", "schedules.0.blocklists")
        await self.error("POST", "/api/clients", {"name": "x", "addresses": ["10.0.0.1"],
                                                  "blocklists": [4]},
                         400, "VALIDATION_ERROR", "blocklists")
        await self.ok("POST", "/api/clients", {"name": "Kids", "addresses": ["10.0.0.0/24"]},
                      201)
        await self.error("POST", "/api/clients", {"name": "kids", "addresses": ["10.0.1.1"]},
                         409, "DUPLICATE")
        await self.error("POST", "/api/clients", {"name": "y", "addresses": ["10.0.0.0/24"]},
                         409, "DUPLICATE")
        # Re-saving a client with its own name and addresses is fine.
        await self.ok("PUT", "/api/clients/1", {"name": "Kids", "addresses": ["10.0.0.0/24"],
                                                "comment": "bedroom"})


class BlocklistApiTests(ApiCase):
    async def test_create_refresh_and_enforce(self):
        self.api.lists.serve("/ads.txt", "0.0.0.0 ads.example.com\n")
        self.api.refresher.startService()
        self.addCleanup(self.api.refresher.stopService)
        created = await self.ok("POST", "/api/blocklists", {
            "name": "Ads", "url": "http://lists.test/ads.txt"}, 201)
        self.assertEqual((created["mode"], created["global"], created["domains"]),
                         ("enabled", True, 0))
        refreshed = await self.ok("POST", "/api/blocklists/1/refresh")
        self.assertEqual((refreshed["domains"], refreshed["ok"], refreshed["last_error"]),
                         (1, True, ""))
        await self.api.engine.settled()
        self.assertEqual(self.api.decide("ads.example.com"), (BLOCK, "blocklist:1"))
        await self.ok("PATCH", "/api/blocklists/1", {"mode": "shadow"})
        self.assertEqual(self.api.decide("ads.example.com"), (PASS, ""))
        self.api.lists.serve("/ads.txt", "", status=503)
        failed = await self.error("POST", "/api/blocklists/1/refresh", None, 502,
                                  "REFRESH_FAILED")
        self.assertIn("previous contents stay in use", failed["message"])
        self.assertEqual((await self.ok("GET", "/api/blocklists/1"))["domains"], 1)

    async def test_refresh_refused_where_the_refresher_is_not_running(self):
        await self.ok("POST", "/api/blocklists", {"name": "A", "url": "http://x.test/a"}, 201)
        await self.error("POST", "/api/blocklists/1/refresh", None, 503, "UNAVAILABLE")
        await self.error("POST", "/api/blocklists/2/refresh", None, 404, "NOT_FOUND")

    async def test_validation_duplicates_and_in_use(self):
        await self.error("POST", "/api/blocklists", {"name": "A", "url": "ftp://x/a"}, 400,
                         "VALIDATION_ERROR", "url")
        await self.error("POST", "/api/blocklists", {"name": "A", "url": "http://x.test/a",
                                                     "mode": "on"}, 400, "VALIDATION_ERROR")
        await self.ok("POST", "/api/blocklists", {"name": "A", "url": "http://x.test/a"}, 201)
        await self.error("POST", "/api/blocklists", {"name": "B", "url": "http://x.test/a"},
                         409, "DUPLICATE")
        await self.ok("POST", "/api/clients", {"name": "kid", "addresses": ["10.0.0.9"],
                                               "use_global_blocklists": False,
                                               "blocklists": [1]}, 201)
        await self.error("DELETE", "/api/blocklists/1", None, 409, "IN_USE")
        await self.ok("PATCH", "/api/clients/1", {"blocklists": []})
        await self.ok("DELETE", "/api/blocklists/1", status=204)


class RewriteApiTests(ApiCase):
    async def test_rewrites(self):
        r = await self.ok("POST", "/api/dns/rewrites", {"domain": "NAS.home",
                                                        "answer": "192.168.1.10"}, 201)
        self.assertEqual((r["domain"], r["ttl"]), ("nas.home", 300))
        self.assertEqual(self.api.decide("nas.home"), (REWRITE, "rewrite:1"))
        await self.error("POST", "/api/dns/rewrites", {"domain": "nas.home",
                                                       "answer": "192.168.1.10"}, 409,
                         "DUPLICATE")
        await self.error("POST", "/api/dns/rewrites", {"domain": "nas.home",
                                                       "answer": "other.home"}, 409, "CONFLICT")
        await self.error("POST", "/api/dns/rewrites", {"domain": "x.home", "answer": "a b"},
                         400, "VALIDATION_ERROR", "answer")
        await self.error("POST", "/api/dns/rewrites", {"domain": "*x.home", "answer": "1.2.3.4"},
                         400, "VALIDATION_ERROR", "domain")
        await self.ok("POST", "/api/dns/rewrites", {"domain": "*.lab.home", "answer": "fd00::1",
                                                    "ttl": 60}, 201)
        self.assertEqual(self.api.decide("a.lab.home", qtype=28), (REWRITE, "rewrite:2"))


class ProtectionApiTests(ApiCase):
    async def test_pause_for_a_while_and_resume(self):
        await self.ok("POST", "/api/rules", {"pattern": "ads.example", "action": "block"}, 201)
        state = await self.ok("POST", "/api/protection/pause", {"minutes": 1.5})
        self.assertEqual((state["paused"], state["remaining_seconds"]), (True, 90))
        self.assertEqual(self.api.decide("ads.example"), (PASS, "protection:paused"))
        self.api.clock.advance(90)
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))
        self.assertEqual((await self.ok("GET", "/api/protection"))["enabled"], True)
        state = await self.ok("POST", "/api/protection/pause", {})
        self.assertEqual((state["paused"], state["until"]), (True, None))
        self.api.clock.advance(86400 * 30)
        self.assertEqual(self.api.decide("ads.example"), (PASS, "protection:paused"))
        state = await self.ok("DELETE", "/api/protection/pause")
        self.assertEqual(state["enabled"], True)
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))
        await self.error("POST", "/api/protection/pause", {"minutes": 1, "seconds": 5}, 400,
                         "VALIDATION_ERROR")
        await self.error("POST", "/api/protection/pause", {"minutes": -1}, 400,
                         "VALIDATION_ERROR")


    def clock_steps(self):
        from sentinel.dns.clocksteps import ClockSteps

        mono = [0.0]
        steps = ClockSteps(self.api.clock, monotonic=lambda: mono[0])
        self.rebased = []  # the write each step started, to wait for
        steps.listeners.append(lambda step: self.rebased.append(
            self.api.pauses.clock_stepped(step)))
        steps.check()
        self.api.pauses.check_clock = steps.check

        def elapse(seconds):  # real time passes: both clocks move
            mono[0] += seconds
            self.api.clock.advance(seconds)

        return steps, elapse

    async def test_a_pause_keeps_its_length_when_the_clock_steps_back(self):
        # The clock ran an hour ahead; NTP steps it back mid-pause.
        await self.ok("POST", "/api/rules", {"pattern": "ads.example", "action": "block"}, 201)
        steps, elapse = self.clock_steps()
        await self.ok("POST", "/api/protection/pause", {"minutes": 10})
        elapse(300)
        self.api.clock.rightNow -= 3600
        steps.check()
        await defer.maybeDeferred(self.rebased.pop)
        state = await self.ok("GET", "/api/protection")
        self.assertEqual(state["remaining_seconds"], 300)
        elapse(299)
        self.assertEqual(self.api.decide("ads.example"), (PASS, "protection:paused"))
        elapse(1)
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))

    async def test_a_pause_keeps_its_length_when_the_clock_steps_forward(self):
        await self.ok("POST", "/api/rules", {"pattern": "ads.example", "action": "block"}, 201)
        steps, elapse = self.clock_steps()
        await self.ok("POST", "/api/protection/pause", {"minutes": 10})
        elapse(300)
        self.api.clock.advance(86400)  # the wall clock alone jumps a day
        steps.check()
        await defer.maybeDeferred(self.rebased.pop)
        self.assertEqual((await self.ok("GET", "/api/protection"))["remaining_seconds"], 300)
        self.assertEqual(self.api.decide("ads.example"), (PASS, "protection:paused"))
        elapse(300)
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))

    async def test_a_pause_from_before_a_restart_is_stored_as_ended_when_it_ends(self):
        from sentinel.filtering.pauseclock import PauseClock

        until = self.api.clock.seconds() + 600
        await self.api.store.put("setting", "protection", {"paused": True, "until": until})
        self.api.pauses.stopService()
        pauses = PauseClock(self.api.store, self.api.clock)
        pauses.startService()  # the new leader, or this one restarted
        self.addCleanup(pauses.stopService)
        await pauses.idle()  # it has read the setting
        self.api.clock.advance(600)
        await pauses.idle()
        self.assertEqual((await self.api.store.get("setting", "protection")).data,
                         {"paused": False, "until": None})

    async def test_leader_again_stores_its_pause_as_ended(self):
        await self.ok("POST", "/api/protection/pause", {"minutes": 10})
        self.api.pauses.stopService()  # follower for a while
        self.api.pauses.startService()  # leader again
        await self.api.pauses.idle()
        self.api.clock.advance(600)
        await self.api.pauses.idle()
        self.assertEqual((await self.ok("GET", "/api/protection"))["enabled"], True)
        self.assertEqual((await self.api.store.get("setting", "protection")).data["paused"],
                         False)

    async def test_storing_the_end_is_tried_again_when_the_store_fails(self):
        from sentinel.store import StoreUnavailable

        await self.ok("POST", "/api/protection/pause", {"minutes": 10})
        transact, failures = self.api.store.transact, [StoreUnavailable("locked")]

        def flaky(fn, *args):
            if failures:
                return defer.fail(failures.pop())
            return transact(fn, *args)

        self.patch(self.api.store, "transact", flaky)
        self.api.clock.advance(600)
        await self.api.pauses.idle()
        self.assertEqual((await self.api.store.get("setting", "protection")).data["paused"],
                         True)
        self.api.clock.advance(5)
        await self.api.pauses.idle()
        self.assertEqual((await self.api.store.get("setting", "protection")).data["paused"],
                         False)

    async def test_a_pause_ending_while_the_last_ones_end_is_stored_is_stored_too(self):
        store, held = self.api.store, []

        class Holding:  # holds the pause clock's first write
            def transact(self, fn, *args):
                if not held:
                    held.append(defer.Deferred())
                    return held[0].addCallback(lambda _: store.transact(fn, *args))
                return store.transact(fn, *args)

        self.api.pauses.store = Holding()
        await self.ok("POST", "/api/protection/pause", {"seconds": 1})
        self.api.clock.advance(1)  # its end is being stored...
        await self.ok("POST", "/api/protection/pause", {"seconds": 2})
        self.api.clock.advance(2)  # ...when the next pause ends
        held[0].callback(None)
        await self.api.pauses.idle()
        self.api.clock.advance(0)  # the reactor's next turn
        await self.api.pauses.idle()
        self.assertEqual((await store.get("setting", "protection")).data["paused"], False)

    async def test_a_pause_set_elsewhere_keeps_its_end_over_a_clock_step(self):
        # Set before a restart or by another node, with another clock: the
        # step of this clock says nothing about its end.
        steps, elapse = self.clock_steps()
        until = self.api.clock.seconds() + 600
        await self.api.store.put("setting", "protection", {"paused": True, "until": until})
        self.api.clock.rightNow -= 3600
        steps.check()
        self.assertEqual(self.rebased, [None])  # nothing written
        self.assertEqual((await self.ok("GET", "/api/protection"))["until"], until)


    async def test_a_pause_that_ended_stays_ended_over_a_clock_step_back(self):
        await self.ok("POST", "/api/rules", {"pattern": "ads.example", "action": "block"}, 201)
        steps, elapse = self.clock_steps()
        await self.ok("POST", "/api/protection/pause", {"minutes": 5})
        elapse(300)
        await self.api.pauses.idle()
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))
        elapse(600)
        self.api.clock.rightNow -= 3600  # back before the pause's stored end
        steps.check()
        await self.api.pauses.idle()
        self.assertEqual((await self.ok("GET", "/api/protection"))["enabled"], True)
        self.assertEqual(self.api.decide("ads.example"), (BLOCK, "rule:1"))


class SettingsApiTests(ApiCase):
    async def test_settings(self):
        s = await self.ok("GET", "/api/filtering/settings")
        self.assertEqual((s["query_log_days"], s["refresh_hours"]), (7, 24))
        await self.error("PUT", "/api/filtering/settings", {"time_zone": "Nowhere/Land"}, 400,
                         "VALIDATION_ERROR", "time_zone")
        s = await self.ok("PUT", "/api/filtering/settings", {"time_zone": "Asia/Tokyo",
                                                             "query_log_days": 2})
        self.assertEqual((s["effective_time_zone"], s["query_log_days"], s["refresh_hours"]),
                         ("Asia/Tokyo", 2, 24))
        status = await self.ok("GET", "/api/filtering/status")
        self.assertEqual(status["time_zone"], "Asia/Tokyo")


class ScheduleTimeZoneTests(ApiCase):
    """Schedules run in the filtering time zone; empty means each node's host
    zone, which differs between nodes (a container is in UTC): the first
    schedule saved writes the leader's zone into the synced setting."""

    SCHEDULE = [{"days": ["mon"], "start": "21:00", "end": "07:00", "block": "all"}]

    def host_zone(self, name):
        from sentinel.filtering import schedule as sched

        self.patch(sched, "named_host_zone", lambda: name)

    async def zone(self):
        return (await self.ok("GET", "/api/filtering/settings"))["time_zone"]

    async def test_the_first_schedule_pins_the_leaders_zone(self):
        self.host_zone("Europe/Berlin")
        await self.ok("POST", "/api/clients", {"name": "pc", "addresses": ["10.0.0.2"]}, 201)
        self.assertEqual(await self.zone(), "")  # no schedule: nothing depends on it
        await self.ok("PATCH", "/api/clients/1", {"schedules": self.SCHEDULE})
        self.assertEqual(await self.zone(), "Europe/Berlin")
        status = await self.ok("GET", "/api/filtering/status")
        self.assertEqual(status["time_zone"], "Europe/Berlin")
        # Another node (or this one moved) names another zone: the setting stays.
        self.host_zone("America/New_York")
        await self.ok("POST", "/api/clients", {"name": "tv", "addresses": ["10.0.0.3"],
                                               "schedules": self.SCHEDULE}, 201)
        self.assertEqual(await self.zone(), "Europe/Berlin")

    async def test_a_chosen_zone_is_kept(self):
        self.host_zone("Europe/Berlin")
        await self.ok("PUT", "/api/filtering/settings", {"time_zone": "Asia/Tokyo"})
        await self.ok("POST", "/api/clients", {"name": "tv", "addresses": ["10.0.0.3"],
                                               "schedules": self.SCHEDULE}, 201)
        self.assertEqual(await self.zone(), "Asia/Tokyo")

    async def test_a_host_that_names_no_zone_pins_nothing(self):
        self.host_zone(None)
        await self.ok("POST", "/api/clients", {"name": "tv", "addresses": ["10.0.0.3"],
                                               "schedules": self.SCHEDULE}, 201)
        self.assertEqual(await self.zone(), "")
