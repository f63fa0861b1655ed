"""
A real daemon on PostgreSQL whose database misbehaves under it: the API
answers 503 STORE_UNAVAILABLE (never a 500, never a hang), /api/health says
why, DNS keeps answering, and it all heals without a restart.
"""

import psycopg2
from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import create_token, setup_admin
from tests.cluster.e2e import wait_until
from tests.dns.clients import addresses, query
from tests.support import pg
from tests.support.daemon import Daemon
from tests.support.upstream import Upstream


class PostgresDaemonTests(SynchronousTestCase):
    if pg.skip_reason():
        skip = pg.skip_reason()

    def test_database_failures_are_503s_and_heal_by_themselves(self):
        up = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})
        url, drop = pg.create_database()
        self.addCleanup(drop)  # after the daemon stops (cleanups run in reverse)
        node = Daemon(self, upstreams=[up.spec], database=url).start()
        auth = {"Authorization": "Bearer " + create_token(node, setup_admin(node))}
        admin = psycopg2.connect(url)
        admin.autocommit = True
        self.addCleanup(admin.close)
        name = url.rpartition("/")[2]

        # A table dropped (here: renamed) under the daemon: was a 500.
        admin.cursor().execute("ALTER TABLE config RENAME TO config_away")
        r = node.post("/api/rules", {"pattern": "a.example.test", "action": "block"},
                      headers=auth)
        self.assertEqual((r.status, r.json()["error"]), (503, "STORE_UNAVAILABLE"),
                         r.body)
        problems = node.get("/api/health").json().get("problems", {})
        self.assertIn('relation "config" does not exist', problems.get("store", ""))
        self.assertEqual(addresses(query(node.dns_port, "www.example.test")), ["198.18.0.10"])
        admin.cursor().execute("ALTER TABLE config_away RENAME TO config")
        r = node.post("/api/rules", {"pattern": "a.example.test", "action": "block"},
                      headers=auth)
        self.assertEqual(r.status, 201, r.body)

        # Its connections killed (a server restart, a failover): at most a
        # 503 while it reconnects, then the API works again by itself.
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid()", (name,))
        statuses = []

        def works():
            statuses.append(node.get("/api/rules", headers=auth, timeout=10).status)
            return statuses[-1] == 200

        wait_until(works, 20, what="the API working again")
        self.assertEqual(set(statuses) - {200, 503}, set(), statuses)
        r = node.post("/api/rules", {"pattern": "b.example.test", "action": "block"},
                      headers=auth)
        self.assertEqual(r.status, 201, r.body)
        wait_until(lambda: "problems" not in node.get("/api/health").json(), 10,
                   what="no problems left in /api/health")
        self.assertNotIn("Traceback", node.log())
