"""
End to end: a real ``twistd sentinel`` with a local upstream, blocklists
served over HTTP from loopback, queried with dnspython from several
loopback source addresses.
"""

import datetime
import time

import dns.edns
import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.filtering.e2ehelp import FilteringDaemon, ListServer, wait_until

HOSTS = "# hosts\n127.0.0.1 localhost\n0.0.0.0 ads.example.test\n"
ADBLOCK = "[Adblock Plus 2.0]\n||track.example.test^\n@@||ok.track.example.test^\n##.ad\n"
PLAIN = "# plain\nexample.org\n*.wild.example.test\n"


class ListAndModeTests(SynchronousTestCase):
    def test_formats_from_http_and_every_blocking_mode(self):
        f = FilteringDaemon(self)
        lists = ListServer(self)
        for path, text in (("/hosts", HOSTS), ("/adblock", ADBLOCK), ("/plain", PLAIN)):
            lists.serve(path, text)
            created = f.api("POST", "/api/blocklists", {"name": path, "url": lists.url(path)},
                            expect=201)
            refreshed = f.api("POST", f"/api/blocklists/{created['id']}/refresh", expect=200)
            self.assertTrue(refreshed["ok"], refreshed)
        counts = {b["name"]: (b["domains"], b["allows"], b["skipped"])
                  for b in f.api("GET", "/api/blocklists", expect=200)["items"]}
        self.assertEqual(counts, {"/hosts": (1, 0, 0), "/adblock": (1, 1, 0),
                                  "/plain": (2, 0, 0)})
        # Default mode: NXDOMAIN with an SOA, and the Extended DNS Error when asked with EDNS.
        r = f.query("sub.ads.example.test", use_edns=0)
        self.assertEqual(r.rcode(), dns.rcode.NXDOMAIN)
        self.assertEqual(len(r.authority), 1)
        self.assertTrue(any(o.otype == dns.edns.EDE for o in r.options))
        self.assertEqual(f.answer("track.example.test")[0], "NXDOMAIN")
        self.assertEqual(f.answer("x.wild.example.test")[0], "NXDOMAIN")
        self.assertEqual(f.answer("ok.track.example.test")[0], "NXDOMAIN")  # not in the zone
        self.assertEqual(f.up.count("ok.track.example.test"), 1)  # ...but it was forwarded
        self.assertEqual(f.answer("good.example.test"), ("NOERROR", ["198.18.0.69"]))
        f.api("PUT", "/api/dns/settings", {"blocking_mode": "null", "blocked_ttl": 42},
              expect=200)
        wait_until(lambda: f.answer("ads.example.test")[0] == "NOERROR")
        self.assertEqual(f.answer("ads.example.test"), ("NOERROR", ["0.0.0.0"]))
        self.assertEqual(f.answer("ads.example.test", "AAAA"), ("NOERROR", ["::"]))
        self.assertEqual(f.query("ads.example.test").answer[0].ttl, 42)
        f.api("PUT", "/api/dns/settings", {"blocking_mode": "refused"}, expect=200)
        wait_until(lambda: f.answer("ads.example.test")[0] == "REFUSED")
        self.assertEqual(f.up.count("ads.example.test"), 0)

    def test_failed_refresh_keeps_old_contents_and_notifies(self):
        f = FilteringDaemon(self)
        lists = ListServer(self)
        lists.serve("/l", HOSTS)
        f.api("POST", "/api/blocklists", {"name": "ads", "url": lists.url("/l")}, expect=201)
        wait_until(lambda: f.api("GET", "/api/blocklists/1")["domains"] == 1)
        wait_until(lambda: f.answer("ads.example.test")[0] == "NXDOMAIN")
        lists.serve("/l", "gone", status=500)
        r = f.d.request("POST", "/api/blocklists/1/refresh", headers=f.auth)
        self.assertEqual((r.status, r.json()["error"]), (502, "REFRESH_FAILED"))
        self.assertEqual(f.answer("ads.example.test")[0], "NXDOMAIN")
        item = f.api("GET", "/api/blocklists/1", expect=200)
        self.assertEqual((item["ok"], item["domains"]), (False, 1))
        self.assertIn("HTTP 500", item["last_error"])
        with f.db() as db:
            notes = db.execute("SELECT level, kind, message FROM notifications").fetchall()
        self.assertEqual(len(notes), 1)
        self.assertEqual(notes[0][:2], ("warning", "blocklist"))
        self.assertIn("'ads' could not be refreshed", notes[0][2])

    def test_shadow_mode_answers_and_logs(self):
        f = FilteringDaemon(self)
        lists = ListServer(self)
        lists.serve("/s", "shadow.example.test\n")
        f.api("POST", "/api/blocklists", {"name": "s", "url": lists.url("/s"),
                                          "mode": "shadow"}, expect=201)
        wait_until(lambda: f.api("GET", "/api/blocklists/1")["domains"] == 1)
        self.assertEqual(f.answer("shadow.example.test"), ("NOERROR", ["198.18.0.70"]))
        row = f.logs(domain="shadow")[0]
        self.assertEqual((row["decision"], row["reason"]), ("shadow-blocked", "blocklist:1"))


class RuleAndClientTests(SynchronousTestCase):
    def test_rules_subdomain_semantics_and_allow_beats_block(self):
        f = FilteringDaemon(self)
        f.api("POST", "/api/rules", {"pattern": "example.test", "action": "block"}, expect=201)
        # Enforced as soon as the API has answered: no waiting.
        self.assertEqual(f.answer("www.example.test")[0], "NXDOMAIN")
        f.api("POST", "/api/rules", {"pattern": "good.example.test", "action": "allow"},
              expect=201)
        self.assertEqual(f.answer("good.example.test"), ("NOERROR", ["198.18.0.69"]))
        f.api("PUT", "/api/rules/1", {"pattern": "*.ads.example.test", "action": "block"},
              expect=200)
        self.assertEqual(f.answer("ads.example.test"), ("NOERROR", ["198.18.0.66"]))
        self.assertEqual(f.answer("sub.ads.example.test")[0], "NXDOMAIN")
        f.api("PUT", "/api/rules/1", {"pattern": "|ads.example.test|", "action": "block"},
              expect=200)
        self.assertEqual(f.answer("ads.example.test")[0], "NXDOMAIN")
        self.assertEqual(f.answer("sub.ads.example.test"), ("NOERROR", ["198.18.0.67"]))

    def test_clients_and_subnets_by_source_address(self):
        f = FilteringDaemon(self)
        f.api("POST", "/api/clients", {"name": "subnet", "addresses": ["127.0.0.0/29"]},
              expect=201)
        f.api("POST", "/api/clients", {"name": "tablet", "addresses": ["127.0.0.2"]},
              expect=201)
        f.api("POST", "/api/rules", {"pattern": "www.example.test", "action": "block",
                                     "client_id": 1}, expect=201)
        f.api("POST", "/api/rules", {"pattern": "mail.example.test", "action": "block",
                                     "client_id": 2}, expect=201)
        self.assertEqual(f.answer("www.example.test", source="127.0.0.3")[0], "NXDOMAIN")
        self.assertEqual(f.answer("mail.example.test", source="127.0.0.3")[0], "NOERROR")
        self.assertEqual(f.answer("www.example.test", source="127.0.0.2")[0], "NOERROR")
        self.assertEqual(f.answer("mail.example.test", source="127.0.0.2")[0], "NXDOMAIN")
        self.assertEqual(f.answer("www.example.test", source="127.0.0.9")[0], "NOERROR")
        f.api("PATCH", "/api/clients/2", {"kill_switch": True}, expect=200)
        self.assertEqual(f.answer("good.example.test", source="127.0.0.2")[0], "NXDOMAIN")
        self.assertEqual(f.answer("good.example.test", source="127.0.0.3")[0], "NOERROR")
        names = {r["client_ip"]: r["client_name"] for r in f.logs(domain="good.example")}
        self.assertEqual(names, {"127.0.0.2": "tablet", "127.0.0.3": "subnet"})
        row = f.logs(client="tablet", decision="blocked")[0]
        self.assertEqual(row["reason"], "client:2:paused")

    def test_schedule_boundaries_and_pause_expiry(self):
        f = FilteringDaemon(self)
        f.api("PUT", "/api/filtering/settings", {"time_zone": "UTC"}, expect=200)
        f.api("POST", "/api/rules", {"pattern": "ads.example.test", "action": "block"},
              expect=201)
        kid = f.api("POST", "/api/clients", {"name": "kid", "addresses": ["127.0.0.2"]},
                    expect=201)
        days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        # A window a few seconds ahead, on the wall clock.  "Not blocked
        # before it" can only be checked by an answer that came before it:
        # on a machine so loaded that the window began before the answer,
        # a window further ahead is set.
        for lead in (3, 6, 12, 24):
            now = datetime.datetime.now(datetime.timezone.utc)
            if (now + datetime.timedelta(seconds=lead + 3)).date() != now.date():
                time.sleep(lead + 4)  # not across midnight: one day's window
                now = datetime.datetime.now(datetime.timezone.utc)
            start = now.replace(microsecond=0) + datetime.timedelta(seconds=lead)
            end = start + datetime.timedelta(seconds=2)
            f.api("PATCH", f"/api/clients/{kid['id']}", {"schedules": [
                {"days": [days[start.weekday()]], "start": start.strftime("%H:%M:%S"),
                 "end": end.strftime("%H:%M:%S")}]}, expect=200)
            before = f.answer("good.example.test", source="127.0.0.2")[0]
            if time.time() < start.timestamp():
                break
        else:
            self.fail("no answer came before the schedule's window began")
        self.assertEqual(before, "NOERROR")
        wait_until(lambda: f.answer("good.example.test", source="127.0.0.2")[0] == "NXDOMAIN",
                   lead + 10, what="blocked in the window")
        self.assertGreaterEqual(time.time(), start.timestamp())
        wait_until(lambda: f.answer("good.example.test", source="127.0.0.2")[0] == "NOERROR")
        self.assertGreaterEqual(time.time(), end.timestamp())
        # Pause for a moment: everything passes, then blocking resumes by itself.
        state = f.api("POST", "/api/protection/pause", {"seconds": 3}, expect=200)
        self.assertTrue(state["paused"])
        self.assertEqual(f.answer("ads.example.test")[0], "NOERROR")
        self.assertEqual(f.logs(domain="ads.example")[0]["reason"], "protection:paused")
        wait_until(lambda: f.answer("ads.example.test")[0] == "NXDOMAIN")
        self.assertFalse(f.api("GET", "/api/protection", expect=200)["paused"])


class RewriteAndLogTests(SynchronousTestCase):
    def test_rewrites_with_cname_chasing(self):
        f = FilteringDaemon(self)
        for domain, answer in (("nas.home.test", "192.168.1.10"),
                               ("nas.home.test", "fd00::10"),
                               ("media.home.test", "www.example.test"),
                               ("*.lab.home.test", "nas.home.test"),
                               ("blocked.home.test", "ads.example.test")):
            f.api("POST", "/api/dns/rewrites", {"domain": domain, "answer": answer, "ttl": 60},
                  expect=201)
        f.api("POST", "/api/rules", {"pattern": "ads.example.test", "action": "block"},
              expect=201)
        self.assertEqual(f.answer("nas.home.test"), ("NOERROR", ["192.168.1.10"]))
        self.assertEqual(f.query("nas.home.test").answer[0].ttl, 60)
        self.assertEqual(f.answer("nas.home.test", "AAAA"), ("NOERROR", ["fd00::10"]))
        self.assertEqual(f.answer("nas.home.test", "MX"), ("NOERROR", []))
        self.assertEqual(f.answer("media.home.test"),
                         ("NOERROR", ["www.example.test.", "198.18.0.10"]))
        self.assertEqual(f.answer("x.lab.home.test"),
                         ("NOERROR", ["nas.home.test.", "192.168.1.10"]))
        self.assertEqual(f.answer("lab.home.test")[0], "NXDOMAIN")  # forwarded, not in zone
        self.assertEqual(f.answer("blocked.home.test")[0], "NXDOMAIN")
        self.assertEqual(f.up.count("ads.example.test"), 0)

    def test_query_log_rows_for_each_decision_and_retention(self):
        f = FilteringDaemon(self)
        lists = ListServer(self)
        lists.serve("/s", "shadow.example.test\n")
        f.api("POST", "/api/blocklists", {"name": "s", "url": lists.url("/s"),
                                          "mode": "shadow"}, expect=201)
        f.api("POST", "/api/rules", {"pattern": "ads.example.test", "action": "block"},
              expect=201)
        f.api("POST", "/api/rules", {"pattern": "good.example.test", "action": "allow"},
              expect=201)
        f.api("POST", "/api/dns/rewrites", {"domain": "nas.home.test",
                                            "answer": "192.168.1.10"}, expect=201)
        wait_until(lambda: f.api("GET", "/api/blocklists/1")["domains"] == 1)
        for name in ("ads.example.test", "good.example.test", "nas.home.test",
                     "www.example.test", "www.example.test", "shadow.example.test"):
            f.answer(name)
        rows = f.logs(limit=6)
        seen = [(r["qname"], r["decision"], r["reason"]) for r in reversed(rows)]
        self.assertEqual(seen, [
            ("ads.example.test", "blocked", "rule:1"),
            ("good.example.test", "allowed", "rule:2"),
            ("nas.home.test", "rewritten", "rewrite:1"),
            ("www.example.test", "forwarded", ""),
            ("www.example.test", "cached", ""),
            ("shadow.example.test", "shadow-blocked", "blocklist:1"),
        ])
        forwarded = rows[2]
        self.assertEqual((forwarded["client_ip"], forwarded["qtype_name"],
                          forwarded["rcode_name"], forwarded["upstream"]),
                         ("127.0.0.1", "A", "NOERROR", f.up.spec))
        self.assertGreater(forwarded["duration_ms"], 0)
        summary = f.api("GET", "/api/metrics/summary", expect=200)
        self.assertEqual((summary["total"], summary["blocked"]), (6, 1))
        metrics = f.d.get("/metrics", headers=f.auth).body.decode()
        self.assertIn('sentinel_queries_total{decision="blocked"} 1', metrics)
        # Retention: old rows go when the job runs (at start, then hourly).
        f.api("PUT", "/api/filtering/settings", {"query_log_days": 1}, expect=200)
        with f.db() as db:
            db.execute("INSERT INTO query_log (ts, client_ip, qname, qtype, decision) "
                       "VALUES (?, '127.0.0.1', 'old.example.test', 1, 'forwarded')",
                       (time.time() - 2 * 86400,))
        self.assertEqual(len(f.logs(domain="old.example")), 1)
        f.d.stop()
        f.d.start()
        wait_until(lambda: f.logs(domain="old.example") == [])
        self.assertEqual(len(f.logs()), 6)
