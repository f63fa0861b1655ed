"""
Two real daemons on loopback: the follower pulls the leader's signed
configuration; role-file flips switch services; readiness follows sync.
Run with both storage pairings (leader on PostgreSQL + follower on SQLite,
and the reverse).
"""

import base64
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.cluster.e2e import (
    changes_path, clear_role, entities, make_daemon, nodetool, signed, wait_until, write_role,
)
from tests.api.daemon_admin import create_token, setup_admin
from tests.support import pg
from tests.support.upstream import Upstream


def resolve(daemon, name="www.example.test"):
    import dns.message
    import dns.query

    answer = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                           port=daemon.dns_port, timeout=2)
    return [rr.address for rrset in answer.answer for rr in rrset]


class TwoNodes:
    leader_db = follower_db = "sqlite"
    follower_args = ()

    def setUp(self):
        self.secret = os.urandom(32)
        self.upstream = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"],
                                                                   "ttl": 3600}})
        ups = [self.upstream.spec]
        self.leader = make_daemon(self, self.leader_db, upstreams=ups)
        self.follower = make_daemon(self, self.follower_db, upstreams=ups,
                                    args=list(self.follower_args))
        nodetool(self.leader, "membership", {"role": "leader", "secret": self.secret.hex(),
                                             "leaderUrl": self.leader.base_url})
        nodetool(self.follower, "membership", {"role": "follower", "secret": self.secret.hex(),
                                               "leaderUrl": self.leader.base_url})

    def converged(self):
        want = entities(nodetool(self.leader, "dump"))
        got = nodetool(self.follower, "dump")
        return entities(got) == want and got


class SyncEndToEnd(TwoNodes):
    def test_every_kind_converges_including_deletions(self):
        blob = base64.b64encode(b"SBL1 pretend list contents").decode()
        sha = nodetool(self.leader, "blob", blob)["sha256"]
        nodetool(self.leader, "put", [
            ["setting", "ui", {"theme": "dark"}],
            ["setting", "protection", {"pausedUntil": None}],
            ["secret", "smtp_password", {"value": "hunter2"}],
            ["user", "admin", {"passwordHash": "$scrypt$x"}],
            ["session", "abc", {"user": "admin", "expires": 4102444800}],
            ["api_token", "1", {"name": "ci", "hash": "00"}],
            ["client", "1", {"name": "laptop", "ips": ["198.18.0.7"]}],
            ["rule", "1", {"pattern": "ads.example", "action": "block"}],
            ["rule", "2", {"pattern": "ok.example", "action": "allow"}],
            ["blocklist", "1", {"url": "http://only-leader/list.txt",
                                "content": {"sha256": sha}}],
            ["rewrite", "1", {"domain": "nas.home", "answer": "198.18.0.10"}],
        ])
        # The follower had its own local configuration: replaced, not merged.
        nodetool(self.follower, "put", [["rule", "7", {"pattern": "local.example"}],
                                        ["setting", "ui", {"theme": "light"}]])
        self.leader.start()
        self.follower.start()
        dump = wait_until(self.converged, 20, 0.2, "first sync")
        dump = nodetool(self.follower, "dump")
        self.assertIn(sha, dump["blobs"])
        self.assertEqual(entities(dump)[("secret", "smtp_password")], {"value": "hunter2"})
        ready = self.follower.get("/api/cluster/ready")
        self.assertEqual((ready.status, ready.json()["role"]), (200, "follower"))

        # Changes and deletions of every kind, written while both run.
        nodetool(self.leader, "put", [
            ["setting", "protection", None], ["secret", "smtp_password", None],
            ["session", "abc", None], ["api_token", "1", None], ["client", "1", None],
            ["rule", "1", None], ["rule", "2", {"pattern": "ok.example", "action": "block"}],
            ["blocklist", "1", None], ["rewrite", "1", None], ["user", "admin", None],
            ["rule", "3", {"pattern": "new.example", "action": "block"}],
        ])
        wait_until(self.converged, 20, 0.2, "changes and deletions")
        dump = nodetool(self.follower, "dump")
        self.assertEqual(sorted(entities(dump)), [("rule", "2"), ("rule", "3"), ("setting", "ui")])
        self.assertEqual(dump["blobs"], [])  # unreferenced contents collected

    def test_follower_not_ready_after_window_when_leader_gone(self):
        self.leader.start()
        self.follower.start()
        wait_until(lambda: self.follower.get("/api/cluster/ready").status == 200, 15,
                   what="follower ready")
        self.leader.kill()
        took = wait_until(lambda: self.follower.get("/api/cluster/ready").status == 503, 15,
                          what="follower not ready")
        body = self.follower.get("/api/cluster/ready").json()
        self.assertEqual((body["ok"], body["role"]), (False, "follower"))
        self.assertIsNotNone(body["lastSync"])
        self.assertLess(took, 2 + 2)  # window (2 s) + one poll period + slack
        # Not ready, but still serving DNS with what it has.
        self.assertEqual(resolve(self.follower), ["198.18.0.10"])
        self.assertEqual(self.follower.get("/api/health").status, 200)

    def test_sync_does_not_flush_the_dns_cache(self):
        self.leader.start()
        self.follower.start()
        auth = {"Authorization": "Bearer " + create_token(self.leader, setup_admin(self.leader))}
        wait_until(self.converged, 20, 0.2, "first sync (the admin account included)")

        def cache_hits():
            r = self.follower.get("/api/system/status", headers=auth)
            self.assertEqual(r.status, 200, r.body)
            return r.json()["components"]["dns"]["cache_hits"]

        self.assertEqual(resolve(self.follower), ["198.18.0.10"])
        hits = [cache_hits()]
        self.assertEqual(resolve(self.follower), ["198.18.0.10"])
        hits.append(cache_hits())
        # Idle (no-op) syncs, then a change that does not affect answers.
        time.sleep(1.5)
        nodetool(self.leader, "put", [["session", "s9", {"user": "admin"}]])
        wait_until(self.converged, 20, 0.2, "session synced")
        for _ in range(3):
            self.assertEqual(resolve(self.follower), ["198.18.0.10"])
            hits.append(cache_hits())
        self.assertEqual(hits, sorted(set(hits)))  # climbing, every query a hit
        self.assertEqual(hits[-1] - hits[0], 4)
        self.assertEqual(self.upstream.count("www.example.test", "A"), 1)


class RoleFlips(TwoNodes):
    def test_role_file_switches_services_within_a_second(self):
        self.leader.start()
        self.follower.start()
        wait_until(self.converged, 20, 0.2, "first sync")

        def serving():
            path = changes_path()
            r = self.leader.get(path, headers=signed(self.leader, self.secret, "GET", path))
            return r.status == 200

        self.assertTrue(serving())
        write_role(self.leader, "follower\n")
        took = wait_until(lambda: not serving(), 5, what="leader-only services to stop")
        self.assertLess(took, 1.0)
        self.assertEqual(self.leader.get("/api/cluster/ready").json()["role"], "follower")
        write_role(self.leader, "leader")
        took = wait_until(serving, 5, what="leader-only services to start")
        self.assertLess(took, 1.0)

        write_role(self.follower, "leader")
        took = wait_until(lambda: self.follower.get("/api/cluster/ready").json()["role"]
                          == "leader", 5, what="follower to act as leader")
        self.assertLess(took, 1.0)
        # A configured follower in failover does not serve sync: it is not
        # the source of truth.
        path = changes_path()
        r = self.follower.get(path, headers=signed(self.follower, self.secret, "GET", path))
        self.assertEqual((r.status, r.json()["error"]), (409, "NOT_LEADER"))
        clear_role(self.follower)
        took = wait_until(lambda: self.follower.get("/api/cluster/ready").json()["role"]
                          == "follower", 5, what="follower back")
        self.assertLess(took, 1.0)


class SignedRequests(TwoNodes):
    def test_tampered_replayed_expired_rejected(self):
        self.leader.start()
        path = changes_path()
        headers = signed(self.leader, self.secret, "GET", path)
        self.assertEqual(self.leader.get(path, headers=headers).status, 200)
        r = self.leader.get(path, headers=headers)
        self.assertEqual((r.status, r.json()["error"]), (401, "REPLAYED"))

        fresh = signed(self.leader, self.secret, "GET", path)
        r = self.leader.get(changes_path(since=1), headers=fresh)
        self.assertEqual((r.status, r.json()["error"]), (401, "BAD_SIGNATURE"))
        r = self.leader.get(path, headers=signed(self.leader, os.urandom(32), "GET", path))
        self.assertEqual((r.status, r.json()["error"]), (401, "BAD_SIGNATURE"))
        r = self.leader.get(path, headers=signed(self.leader, self.secret, "GET", path,
                                                 now=time.time() - 61))
        self.assertEqual((r.status, r.json()["error"]), (401, "EXPIRED"))
        r = self.leader.get(path)
        self.assertEqual((r.status, r.json()["error"]), (401, "UNSIGNED"))

        # The nonce is remembered in the database: a restart does not help.
        self.leader.stop()
        self.leader.start()
        r = self.leader.get(path, headers=headers)
        self.assertEqual((r.status, r.json()["error"]), (401, "REPLAYED"))


def _pairings(*bases):
    """Each base class once per storage pairing."""
    out = {}
    for base in bases:
        for leader, follower in (("postgres", "sqlite"), ("sqlite", "postgres")):
            name = f"{base.__name__}_{leader}_to_{follower}"
            attrs = {"leader_db": leader, "follower_db": follower,
                     "follower_args": ("--sync-freshness", "2")}
            if pg.skip_reason():
                attrs["skip"] = pg.skip_reason()
            out[name] = type(name, (base, SynchronousTestCase), attrs)
    return out


globals().update(_pairings(SyncEndToEnd, RoleFlips))
globals().update({"SignedRequestsTests": type(
    "SignedRequestsTests", (SignedRequests, SynchronousTestCase), {})})


class QuietLogTests(SynchronousTestCase):
    def test_readiness_and_sync_polls_stay_out_of_the_access_log(self):
        secret = os.urandom(32)
        d = make_daemon(self, "sqlite")
        nodetool(d, "membership", {"role": "leader", "secret": secret.hex(),
                                   "leaderUrl": d.base_url})
        d.start()
        for _ in range(5):
            self.assertEqual(d.get("/api/cluster/ready").status, 200)
        path = changes_path()
        self.assertEqual(d.get(path, headers=signed(d, secret, "GET", path)).status, 200)
        self.assertEqual(d.get("/api/version").status, 200)
        r = d.get(path)  # rejected: logged
        self.assertEqual(r.status, 401)
        wait_until(lambda: "/api/version" in d.log(), 5, what="access log written")
        log = d.log()
        self.assertNotIn("GET /api/cluster/ready", log)
        self.assertEqual(log.count("GET /api/cluster/sync/changes"), 1)  # the rejected one
