"""End to end: a real ``twistd sentinel`` with real HTTP clients."""

from twisted.trial.unittest import SynchronousTestCase

from tests.api.daemon_admin import PASSWORD, create_token, login, scratch_dir, setup_admin
from tests.support.daemon import Daemon


class DaemonAuthTests(SynchronousTestCase):
    def test_setup_login_token_logout(self):
        d = Daemon(self, data_dir=scratch_dir(self)).start()
        r = d.get("/api/auth/status")
        self.assertEqual((r.status, r.json().get("configured")), (200, False), r.body)
        self.assertEqual(d.get("/api/auth/me").status, 401)
        setup_admin(d)
        r = d.post("/api/auth/login", {"username": "admin", "password": "wrong password"})
        self.assertEqual(r.status, 401)
        cookie = login(d)
        self.assertEqual(d.get("/api/auth/me", headers={"Cookie": cookie}).json()["method"],
                         "session")
        r = d.post("/api/auth/tokens", {"name": "e2e"}, headers={
            "Cookie": cookie, "Origin": d.base_url})
        self.assertEqual(r.status, 201, r.body)
        token = r.json()["token"]
        r = d.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(r.json()["method"], "token")
        r = d.post("/api/auth/tokens", {"name": "evil"}, headers={
            "Cookie": cookie, "Origin": "http://evil.example"})
        self.assertEqual(r.status, 403)
        self.assertEqual(d.post("/api/auth/logout", headers={"Cookie": cookie}).status, 204)
        self.assertEqual(d.get("/api/auth/me", headers={"Cookie": cookie}).status, 401)

    def test_sessions_and_tokens_survive_a_restart(self):
        d = Daemon(self, data_dir=scratch_dir(self)).start()
        setup_admin(d)
        cookie = login(d)
        token = create_token(d, cookie)
        d.stop()
        d.start()
        self.assertEqual(d.get("/api/auth/me", headers={"Cookie": cookie}).status, 200)
        self.assertEqual(
            d.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status, 200)
        r = d.post("/api/auth/login", {"username": "admin", "password": PASSWORD})
        self.assertEqual(r.status, 200)


class FirstRunRaceTests(SynchronousTestCase):
    def test_concurrent_first_visits_create_exactly_one_admin(self):
        """Two (here: eight) people on the first-visit page at once: one wins,
        the others get 409 and no session; afterwards setup stays closed."""
        import threading

        d = Daemon(self, data_dir=scratch_dir(self)).start()
        results = {}
        start = threading.Barrier(8)

        def visit(i):
            start.wait()
            results[i] = d.post("/api/auth/setup", {"username": f"admin{i}",
                                                    "password": PASSWORD}, timeout=60)

        threads = [threading.Thread(target=visit, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        statuses = sorted(r.status for r in results.values())
        self.assertEqual(statuses, [201] + [409] * 7, statuses)
        winner = next(i for i, r in results.items() if r.status == 201)
        for i, r in results.items():
            if i != winner:
                self.assertIsNone(r.headers.get("Set-Cookie"), i)
                self.assertEqual(r.json()["error"], "ALREADY_CONFIGURED")
        self.assertEqual(d.post("/api/auth/login", {"username": f"admin{winner}",
                                                    "password": PASSWORD}).status, 200)
        loser = (winner + 1) % 8
        self.assertEqual(d.post("/api/auth/login", {"username": f"admin{loser}",
                                                    "password": PASSWORD}).status, 401)
        self.assertEqual(d.post("/api/auth/setup", {"username": "late",
                                                    "password": PASSWORD}).status, 409)
