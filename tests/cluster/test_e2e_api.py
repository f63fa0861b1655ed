"""
The user guide, end to end with real daemons driven through the API: enable
the leader, join with a code, every kind of change reaches the follower's
DNS (a blocklist whose URL only the leader ever fetched included), the
follower refuses every mutating route, failover keeps it read-only.
Leader on PostgreSQL + follower on SQLite, and the reverse.
"""

import os
import shutil
import tempfile

import dns.message
import dns.query
import dns.rcode
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase

from sentinel import tap
from sentinel.filtering import lastgood
from sentinel.options import build_config
from tests.api.daemon_admin import create_token, login, setup_admin
from tests.cluster.e2e import make_daemon, wait_until, write_role
from tests.filtering.e2ehelp import ListServer
from tests.support import pg
from tests.support.upstream import Upstream

ZONE = {
    "ads.example.test": {"A": ["198.18.0.66"]},
    "track.example.test": {"A": ["198.18.0.68"]},
    "www.example.test": {"A": ["198.18.0.10"]},
    "nas.home.test": {"A": ["198.18.0.99"]},
}


def answer(daemon, name):
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                          port=daemon.dns_port, timeout=2)
    return dns.rcode.to_text(reply.rcode()), sorted(
        rr.to_text() for rrset in reply.answer for rr in rrset)


def endpoint_specs(testcase):
    """Every route of the daemon as ``twistd sentinel`` wires it."""
    directory = tempfile.mkdtemp(prefix="sentinel-routes-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    config = build_config({"data-dir": directory, "upstream": ["127.0.0.1:9"]}, {})
    return [spec for spec, _ in tap.wire(config, reactor).site.endpoints]


class GuideEndToEnd:
    leader_db = follower_db = "sqlite"

    def setUp(self):
        self.up = Upstream.start(self, ZONE)
        self.lists = ListServer(self)
        self.leader = make_daemon(self, self.leader_db, upstreams=[self.up.spec]).start()
        self.follower = make_daemon(self, self.follower_db, upstreams=[self.up.spec],
                                    args=["--sync-freshness", "4"]).start()
        self.auth = {"Authorization": "Bearer " + create_token(
            self.leader, setup_admin(self.leader))}
        self.follower_own = {"Authorization": "Bearer " + create_token(
            self.follower, setup_admin(self.follower))}

    def api(self, daemon, method, path, body=None, expect=200, auth=None):
        r = daemon.request(method, path, body, headers=auth or self.auth)
        self.assertEqual(r.status, expect, (method, path, r.body))
        return r.json() if r.body else None

    def join(self):
        r = self.api(self.leader, "POST", "/api/cluster/enable-leader",
                     {"leaderUrl": self.leader.base_url})
        self.assertIn("loopback", r["warnings"][0])  # not a VIP: said so
        code = self.api(self.leader, "GET", "/api/cluster/join-code")["joinCode"]
        r = self.api(self.follower, "POST", "/api/cluster/configure-follower",
                     {"joinCode": code}, auth=self.follower_own)
        self.assertEqual(r["role"], "follower")
        wait_until(lambda: self.follower.get("/api/cluster/ready").status == 200, 15,
                   what="follower ready")

    def test_guide_sync_reaches_the_followers_dns(self):
        self.join()
        # The follower's own admin token is gone: accounts come from the leader.
        self.assertEqual(self.follower.get("/api/cluster/status",
                                           headers=self.follower_own).status, 401)
        status = self.api(self.follower, "GET", "/api/cluster/status")
        self.assertEqual((status["configuredRole"], status["effectiveRole"]),
                         ("follower", "follower"))
        self.assertIsNotNone(status["sync"]["lastSync"])

        self.lists.serve("/ads.txt", "ads.example.test\n")
        self.api(self.leader, "POST", "/api/blocklists",
                 {"name": "ads", "url": self.lists.url("/ads.txt")}, expect=201)
        self.api(self.leader, "POST", "/api/rules",
                 {"pattern": "track.example.test", "action": "block"}, expect=201)
        self.api(self.leader, "POST", "/api/dns/rewrites",
                 {"domain": "nas.home.test", "answer": "198.18.0.42"}, expect=201)
        blocked = ("NXDOMAIN", [])
        wait_until(lambda: answer(self.leader, "ads.example.test") == blocked, 15,
                   what="leader enforcing the blocklist")
        fetched = list(self.lists.hits)
        self.lists.stop()  # from now on nobody can download it

        for name, want in (("ads.example.test", blocked), ("track.example.test", blocked),
                           ("nas.home.test", ("NOERROR", ["198.18.0.42"]))):
            wait_until(lambda: answer(self.follower, name) == want, 10,
                       what=f"follower enforcing {name}")
        self.assertEqual(answer(self.follower, "www.example.test"),
                         ("NOERROR", ["198.18.0.10"]))
        self.assertEqual(self.lists.hits, fetched)  # the follower never downloaded
        item = self.api(self.follower, "GET", "/api/blocklists/1")
        self.assertEqual(item["domains"], 1)

        # The follower saves the policy it enforces as its own last-known-good
        # policy, for a start with a database it cannot open (docs/STORAGE.md).
        lkg = os.path.join(self.follower.data_dir, "policy.lkg")

        def saved():
            try:
                found = lastgood.read_file(lkg)
            except lastgood.LastGoodError:
                return None  # not written yet
            return found and found.blobs and found.config.entities["rule"] and found

        wait_until(saved, 10, what="the follower's last-known-good policy")
        found = saved()
        self.assertEqual([r["pattern"] for r in found.config.entities["rule"].values()],
                         ["track.example.test"])
        self.assertEqual(list(found.blobs), [item["sha256"]])

        # Query logs are not synced (the guide's "What it cannot do"): a query
        # only the leader answered stays in the leader's log.
        def logged(daemon):
            page = self.api(daemon, "GET",
                            "/api/query-logs?domain=leader-only.example.test&limit=10")
            return [(r["qname"], r["client_ip"]) for r in page["items"]]
        self.assertEqual(logged(self.follower), [])
        answer(self.leader, "leader-only.example.test")
        wait_until(lambda: logged(self.leader), 10, what="the query in the leader's log")
        self.api(self.leader, "POST", "/api/rules",
                 {"pattern": "later.example.test", "action": "block"}, expect=201)
        wait_until(lambda: answer(self.follower, "later.example.test") == blocked, 10,
                   what="the follower synced again")
        self.assertEqual(logged(self.follower), [])

        # Nor are notifications: the leader's failed refresh notifies the
        # leader; the follower gets the list's new status, not the notice.
        def notices(daemon):
            feed = self.api(daemon, "GET", "/api/notifications")
            return [n["message"] for n in feed["notifications"]]
        before = notices(self.follower)
        self.api(self.leader, "POST", "/api/blocklists/1/refresh", expect=502)
        self.assertTrue(any("could not be refreshed" in m for m in notices(self.leader)))
        wait_until(lambda: self.api(self.follower, "GET", "/api/blocklists/1")["ok"] is False,
                   10, what="the list's failed status on the follower")
        self.assertEqual(notices(self.follower), before)

        # Deletions reach the follower's DNS too.
        self.api(self.leader, "DELETE", "/api/blocklists/1", expect=204)
        self.api(self.leader, "DELETE", "/api/rules/1", expect=204)
        self.api(self.leader, "DELETE", "/api/dns/rewrites/1", expect=204)
        for name, want in (("ads.example.test", ("NOERROR", ["198.18.0.66"])),
                           ("track.example.test", ("NOERROR", ["198.18.0.68"])),
                           ("nas.home.test", ("NOERROR", ["198.18.0.99"]))):
            wait_until(lambda: answer(self.follower, name) == want, 10,
                       what=f"follower no longer rewriting/blocking {name}")

    def test_follower_refuses_every_mutating_route(self):
        self.join()
        specs = endpoint_specs(self)
        mutating = [s for s in specs if s.mutating]
        self.assertGreater(len(mutating), 20)
        for spec in specs:
            if spec.path.startswith("/api/cluster/"):
                self.assertTrue(spec.readonly_exempt or not spec.mutating, spec.path)
        checked = 0
        for spec in mutating:
            if spec.readonly_exempt:
                continue
            path = spec.path.replace("{", "").replace("}", "")
            for name in ("rule_id", "client_id", "blocklist_id", "rewrite_id", "token_id",
                         "id", "name"):
                path = path.replace(name, "1")
            r = self.follower.request(spec.method, path, {}, headers=self.auth)
            self.assertEqual((r.status, r.json()["error"]), (409, "FOLLOWER_READONLY"),
                             f"{spec.method} {spec.path}")
            self.assertEqual(r.json()["message"],
                             "This node is a follower. Make changes on the leader/VIP.")
            checked += 1
        self.assertGreater(checked, 20)
        # The same change goes through on the leader.
        self.api(self.leader, "POST", "/api/rules",
                 {"pattern": "ok.example.test", "action": "block"}, expect=201)

        # A session opened through the VIP (on the leader) reaches the follower...
        cookie = {"Cookie": login(self.leader)}
        wait_until(lambda: self.follower.get("/api/auth/me", headers=cookie).status == 200,
                   10, what="the leader's session on the follower")

        # Failover: the follower owns the VIP, says so, stays read-only.
        write_role(self.follower, "leader")
        wait_until(lambda: self.follower.get("/api/cluster/ready").json()["role"] == "leader",
                   5, what="failover")
        status = self.api(self.follower, "GET", "/api/cluster/status")
        self.assertTrue(status["failover"])
        self.assertIn("failover active: leader unreachable", status["message"])
        self.assertTrue(status["sync"]["running"])  # still following the leader
        r = self.follower.request("POST", "/api/rules", {"pattern": "x.test", "action": "block"},
                                  headers=self.auth)
        self.assertEqual((r.status, r.json()["error"]), (409, "FOLLOWER_READONLY"))
        self.assertEqual(answer(self.follower, "www.example.test"),
                         ("NOERROR", ["198.18.0.10"]))
        # ...and survives the failover; logging in on the follower works too.
        self.assertEqual(self.follower.get("/api/auth/me", headers=cookie).status, 200)
        own = {"Cookie": login(self.follower)}
        self.assertEqual(self.follower.get("/api/cluster/status", headers=own).status, 200)

        # Recovery is always possible: leave, and the node is writable.
        self.api(self.follower, "POST", "/api/cluster/leave", {})
        self.api(self.follower, "POST", "/api/rules",
                 {"pattern": "mine.example.test", "action": "block"}, expect=201)


def _pairings():
    out = {}
    for leader, follower in (("postgres", "sqlite"), ("sqlite", "postgres")):
        name = f"Guide_{leader}_to_{follower}"
        attrs = {"leader_db": leader, "follower_db": follower}
        if pg.skip_reason():
            attrs["skip"] = pg.skip_reason()
        out[name] = type(name, (GuideEndToEnd, SynchronousTestCase), attrs)
    return out


globals().update(_pairings())
