"""/api/auth/*: setup, login, sessions, logout, passwords, tokens, throttling."""

from twisted.trial.unittest import TestCase

from sentinel.api.base import ApiError
from sentinel.auth import sessions as sessions_mod
from sentinel.auth import tokens
from tests.api.harness import (
    ADMIN, EVIL_ORIGIN, PASSWORD, SAME_ORIGIN, Client, make_api, session_cookie,
)


class SetupTests(TestCase):
    async def test_status_before_and_after_setup(self):
        api = await make_api(self)
        r = await api.client.get("/api/auth/status")
        self.assertEqual(r.json(), {"configured": False, "authenticated": False,
                                    "username": None})
        cookie = await api.setup_admin()
        r = await api.client.get("/api/auth/status", cookie=cookie)
        self.assertEqual(r.json(), {"configured": True, "authenticated": True,
                                    "username": ADMIN})
        r = await api.client.get("/api/auth/status")
        self.assertEqual(r.json()["authenticated"], False)

    async def test_setup_logs_in_with_a_safe_cookie(self):
        api = await make_api(self)
        r = await api.client.post("/api/auth/setup",
                                  json={"username": ADMIN, "password": PASSWORD})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json()["username"], ADMIN)
        raw = r.header("set-cookie")
        self.assertIn("HttpOnly", raw)
        self.assertIn("samesite=strict", raw.lower())
        self.assertIn("Path=/", raw)
        self.assertNotIn("Secure", raw)  # plain http: a Secure cookie would be dropped
        me = await api.client.get("/api/auth/me", cookie=session_cookie(r))
        self.assertEqual(me.json()["username"], ADMIN)
        self.assertEqual(me.json()["method"], "session")

    async def test_cookie_is_secure_over_https(self):
        api = await make_api(self)
        client = Client(api.site.resource(), base="https://sentinel.test")
        r = await client.post("/api/auth/setup",
                              json={"username": ADMIN, "password": PASSWORD},
                              headers={"origin": "https://sentinel.test"})
        self.assertEqual(r.status, 201)
        self.assertIn("Secure", r.header("set-cookie"))

    async def test_second_setup_is_409(self):
        api = await make_api(self)
        await api.setup_admin()
        r = await api.client.post("/api/auth/setup",
                                  json={"username": "other", "password": PASSWORD})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json()["error"], "ALREADY_CONFIGURED")
        # The first admin's password still works; the second was not stored.
        await api.login()
        self.assertIsNone(await api.store.get("user", "other"))

    async def test_setup_validates(self):
        api = await make_api(self)
        r = await api.client.post("/api/auth/setup",
                                  json={"username": ADMIN, "password": "short"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["details"][0]["field"], "password")
        r = await api.client.post("/api/auth/setup",
                                  json={"username": "bad name", "password": PASSWORD})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.json()["details"][0]["field"], "username")
        # In words a first-time user understands, not as a regular expression.
        self.assertEqual(r.json()["message"],
                         "username: must be 1 to 64 letters, digits and . _ @ -, "
                         "starting with a letter or digit")
        r = await api.client.post("/api/auth/setup",
                                  json={"username": ADMIN, "password": " " * 10})
        self.assertEqual(r.status, 400)
        self.assertFalse(await api.users.configured())

    async def test_password_stored_as_scrypt_hash_only(self):
        api = await make_api(self)
        await api.setup_admin()
        user = await api.store.get("user", ADMIN)
        self.assertTrue(user.data["password"].startswith("scrypt$"))
        self.assertNotIn(PASSWORD, repr(user.data))


class LoginTests(TestCase):
    async def test_login_wrong_password_unknown_user_and_success(self):
        api = await make_api(self)
        await api.setup_admin()
        for body in ({"username": ADMIN, "password": "wrong password"},
                     {"username": "nobody", "password": PASSWORD}):
            r = await api.client.post("/api/auth/login", json=body)
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json()["error"], "INVALID_CREDENTIALS")
            self.assertIsNone(r.header("set-cookie"))
        cookie = await api.login(username="ADMIN")  # usernames ignore case
        r = await api.client.get("/api/auth/me", cookie=cookie)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["username"], ADMIN)

    async def test_login_never_rewrites_the_account(self):
        # e.g. a hash made with other scrypt parameters (an older version):
        # it still verifies, and a login (also allowed on followers) leaves
        # the synced account as it is.
        from sentinel.auth.passwords import hash_password

        api = await make_api(self)
        stored = hash_password(PASSWORD, (11, 2, 1))
        await api.store.put("user", ADMIN, {"username": ADMIN, "password": stored,
                                            "role": "admin"})
        before = await api.store.get("user", ADMIN)
        await api.login()
        self.assertEqual(await api.store.get("user", ADMIN), before)

    async def test_only_the_session_hash_is_stored(self):
        api = await make_api(self)
        await api.setup_admin()
        cookie = await api.login()
        value = cookie.split("=", 1)[1]
        sessions = await api.store.list("session")
        self.assertIn(tokens.digest(value), [e.key for e in sessions])
        for e in sessions:
            self.assertNotIn(value, repr(e))

    async def test_garbage_cookie_and_unknown_session_are_401(self):
        api = await make_api(self)
        await api.setup_admin()
        for cookie in ("sentinel_session=garbage", "sentinel_session=" + "A" * 43,
                       "other=1"):
            r = await api.client.get("/api/auth/me", cookie=cookie)
            self.assertEqual(r.status, 401)
            self.assertEqual(r.json()["error"], "UNAUTHENTICATED")

    async def test_logging_in_again_ends_the_browsers_previous_session(self):
        api = await make_api(self)
        await api.setup_admin()
        first = await api.login()
        r = await api.client.post("/api/auth/login", cookie=first,
                                  json={"username": ADMIN, "password": PASSWORD})
        self.assertEqual(r.status, 200)
        second = session_cookie(r)
        self.assertNotEqual(second, first)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=first)).status, 401)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=second)).status, 200)
        # A wrong password ends nothing.
        r = await api.client.post("/api/auth/login", cookie=second,
                                  json={"username": ADMIN, "password": "wrong password"})
        self.assertEqual(r.status, 401)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=second)).status, 200)

    async def test_logout_ends_the_session_on_the_server(self):
        api = await make_api(self)
        await api.setup_admin()
        cookie = await api.login()
        r = await api.client.post("/api/auth/logout", cookie=cookie)
        self.assertEqual(r.status, 204)
        cleared = r.cookies()["sentinel_session"]
        self.assertEqual(cleared.value, "")
        self.assertEqual(cleared["max-age"], "0")
        # Replaying the old cookie does not work: the session is gone.
        self.assertEqual((await api.client.get("/api/auth/me", cookie=cookie)).status, 401)
        self.assertEqual(
            [e.data["username"] for e in await api.store.list("session")], [ADMIN])  # setup's
        # Logging out without a session is fine (idempotent).
        r = await api.client.post("/api/auth/logout")
        self.assertEqual(r.status, 204)

    async def test_session_expires_after_idle_time(self):
        api = await make_api(self)
        await api.setup_admin()
        cookie = await api.login()
        api.clock.advance(sessions_mod.IDLE + 1)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=cookie)).status, 401)

    async def test_active_session_is_renewed_until_the_absolute_limit(self):
        api = await make_api(self)
        await api.setup_admin()
        cookie = await api.login()
        first = (await api.client.get("/api/auth/me", cookie=cookie)).json()["expires_at"]
        step = sessions_mod.IDLE * 0.6  # past half-life: renewed on each use
        elapsed = 0
        while elapsed + step < sessions_mod.ABSOLUTE:
            api.clock.advance(step)
            elapsed += step
            r = await api.client.get("/api/auth/me", cookie=cookie)
            self.assertEqual(r.status, 200, f"after {elapsed} s")
        self.assertGreater(r.json()["expires_at"], first)
        api.clock.advance(sessions_mod.ABSOLUTE - elapsed + 1)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=cookie)).status, 401)

    async def test_prune_deletes_only_expired_sessions(self):
        api = await make_api(self)
        await api.setup_admin()
        await api.login()
        api.clock.advance(sessions_mod.IDLE / 2)
        fresh = await api.login()
        api.clock.advance(sessions_mod.IDLE / 2 + 1)
        self.assertEqual(await api.sessions.prune(), 2)  # setup's and the first login's
        self.assertEqual(len(await api.store.list("session")), 1)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=fresh)).status, 200)

    async def test_throttling_after_ten_failures(self):
        api = await make_api(self)
        await api.setup_admin()
        bad = {"username": ADMIN, "password": "wrong password"}
        for _ in range(10):
            self.assertEqual((await api.client.post("/api/auth/login", json=bad)).status, 401)
        r = await api.client.post("/api/auth/login",
                                  json={"username": ADMIN, "password": PASSWORD})
        self.assertEqual(r.status, 429)
        self.assertEqual(r.json()["error"], "TOO_MANY_ATTEMPTS")
        self.assertEqual(r.header("retry-after"), "60")
        self.assertIsNone(r.header("set-cookie"))
        api.clock.advance(30)
        r = await api.client.post("/api/auth/login", json=bad)
        self.assertEqual((r.status, r.header("retry-after")), (429, "30"))
        api.clock.advance(30)
        await api.login()  # the window has passed

    async def test_too_many_concurrent_password_checks_is_503(self):
        api = await make_api(self)
        await api.setup_admin()
        api.hasher._max_waiting = -1  # as if the queue were full
        r = await api.client.post("/api/auth/login",
                                  json={"username": ADMIN, "password": PASSWORD})
        self.assertEqual((r.status, r.json()["error"]), (503, "BUSY"))
        self.assertEqual(r.header("retry-after"), "2")
        api.hasher._max_waiting = 32
        await api.login()  # and it did not count as a failed attempt

    async def test_login_body_errors(self):
        api = await make_api(self)
        r = await api.client.post("/api/auth/login", data=b"{nope",
                                  headers={"content-type": "application/json"})
        self.assertEqual((r.status, r.json()["error"]), (400, "BAD_JSON"))
        r = await api.client.post("/api/auth/login", json={"username": 1, "password": []})
        self.assertEqual(r.status, 400)
        self.assertEqual({d["field"] for d in r.json()["details"]}, {"username", "password"})
        r = await api.client.post("/api/auth/login", data=b'{"username":"a"}',
                                  headers={"content-type": "text/plain"})
        self.assertEqual(r.status, 415)
        r = await api.client.post("/api/auth/login", json={"username": "a" * 70000,
                                                           "password": "x"})
        self.assertEqual(r.status, 413)


class PasswordChangeTests(TestCase):
    async def test_change_password_revokes_other_sessions(self):
        api = await make_api(self)
        setup_cookie = await api.setup_admin()
        mine = await api.login()
        token = await api.token(mine)
        r = await api.client.post("/api/auth/change-password", cookie=mine, json={
            "current_password": PASSWORD, "new_password": "a new long password"})
        self.assertEqual(r.status, 204)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=mine)).status, 200)
        self.assertEqual(
            (await api.client.get("/api/auth/me", cookie=setup_cookie)).status, 401)
        # API tokens are separate credentials and keep working.
        self.assertEqual((await api.client.get("/api/auth/me", token=token)).status, 200)
        r = await api.client.post("/api/auth/login",
                                  json={"username": ADMIN, "password": PASSWORD})
        self.assertEqual(r.status, 401)
        await api.login(password="a new long password")

    async def test_wrong_current_password_and_weak_new_one(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        r = await api.client.post("/api/auth/change-password", cookie=cookie, json={
            "current_password": "not it at all", "new_password": "a new long password"})
        self.assertEqual((r.status, r.json()["error"]), (403, "WRONG_PASSWORD"))
        r = await api.client.post("/api/auth/change-password", cookie=cookie, json={
            "current_password": PASSWORD, "new_password": "short"})
        self.assertEqual(r.status, 400)
        await api.login()  # unchanged

    async def test_wrong_current_password_is_throttled(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        body = {"current_password": "not it at all", "new_password": "a new long password"}
        for _ in range(10):
            r = await api.client.post("/api/auth/change-password", cookie=cookie, json=body)
            self.assertEqual(r.status, 403)
        r = await api.client.post("/api/auth/change-password", cookie=cookie, json=dict(
            body, current_password=PASSWORD))
        self.assertEqual(r.status, 429)
        self.assertTrue(r.header("retry-after"))

    async def test_unauthenticated_is_401(self):
        api = await make_api(self)
        await api.setup_admin()
        r = await api.client.post("/api/auth/change-password", json={
            "current_password": PASSWORD, "new_password": "a new long password"})
        self.assertEqual(r.status, 401)


class TokenTests(TestCase):
    async def test_create_list_use_revoke(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        r = await api.client.post("/api/auth/tokens", json={"name": "backup script"},
                                  cookie=cookie)
        self.assertEqual(r.status, 201)
        created = r.json()
        self.assertTrue(created["token"].startswith("snt_"))
        listed = (await api.client.get("/api/auth/tokens", cookie=cookie)).json()["tokens"]
        self.assertEqual(listed, [{k: created[k] for k in
                                   ("id", "name", "created_at", "created_by")}])
        me = await api.client.get("/api/auth/me", token=created["token"])
        self.assertEqual(me.json()["method"], "token")
        self.assertEqual(me.json()["token_id"], created["id"])
        stored = await api.store.get("api_token", created["id"])
        # (The secret may itself contain "_": split as the server does.)
        self.assertNotIn(tokens.parse_api_token(created["token"])[1], repr(stored))
        r = await api.client.delete(f"/api/auth/tokens/{created['id']}", cookie=cookie)
        self.assertEqual(r.status, 204)
        self.assertEqual((await api.client.get("/api/auth/me", token=created["token"])).status,
                         401)
        r = await api.client.delete(f"/api/auth/tokens/{created['id']}", cookie=cookie)
        self.assertEqual((r.status, r.json()["error"]), (404, "NOT_FOUND"))

    async def test_unknown_or_malformed_ids_are_404(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        for tid in ("999", "abc", "0", "-1", "1.5"):
            r = await api.client.delete(f"/api/auth/tokens/{tid}", cookie=cookie)
            self.assertEqual(r.status, 404, tid)

    async def test_duplicate_name_is_409(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        await api.token(cookie, "ci")
        r = await api.client.post("/api/auth/tokens", json={"name": "CI"}, cookie=cookie)
        self.assertEqual((r.status, r.json()["error"]), (409, "DUPLICATE"))
        r = await api.client.post("/api/auth/tokens", json={"name": "  "}, cookie=cookie)
        self.assertEqual(r.status, 400)

    async def test_wrong_or_tampered_tokens_are_401(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        token = await api.token(cookie)
        tid, secret = tokens.parse_api_token(token)
        other_secret = ("B" if secret[0] != "B" else "C") + secret[1:]
        for bad in (f"snt_{tid}_{other_secret}", f"snt_{int(tid) + 1}_{secret}", "nonsense",
                    ""):
            r = await api.client.get("/api/auth/me", headers={"authorization": f"Bearer {bad}"})
            self.assertEqual(r.status, 401, bad)
        # A bad bearer token is not rescued by a valid cookie.
        r = await api.client.get("/api/auth/me", cookie=cookie,
                                 headers={"authorization": "Bearer nonsense"})
        self.assertEqual(r.status, 401)


class CrossSiteTests(TestCase):
    async def test_cookie_mutation_from_another_site_is_403(self):
        api = await make_api(self)
        cookie = await api.setup_admin()
        for headers in ({"origin": EVIL_ORIGIN}, {"sec-fetch-site": "cross-site"},
                        {"origin": "null"},
                        {"origin": EVIL_ORIGIN, "authorization": "Basic YTpi"}):
            r = await api.client.post("/api/auth/tokens", json={"name": "x"}, cookie=cookie,
                                      headers=headers)
            self.assertEqual((r.status, r.json()["error"]), (403, "CROSS_SITE_REQUEST"))
        self.assertEqual(await api.store.list("api_token"), [])
        r = await api.client.post("/api/auth/tokens", json={"name": "x"}, cookie=cookie,
                                  headers={"origin": SAME_ORIGIN,
                                           "sec-fetch-site": "same-origin"})
        self.assertEqual(r.status, 201)

    async def test_login_from_another_site_is_403(self):
        api = await make_api(self)
        await api.setup_admin()
        r = await api.client.post("/api/auth/login", json={"username": ADMIN,
                                                           "password": PASSWORD},
                                  headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 403)

    async def test_bearer_token_is_not_subject_to_origin(self):
        api = await make_api(self)
        token = await api.token(await api.setup_admin())
        r = await api.client.post("/api/auth/tokens", json={"name": "y"}, token=token,
                                  headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 201)


class ReadOnlyGuard:
    async def check(self, call):
        raise ApiError(409, "FOLLOWER_READONLY", "read-only")


class FollowerTests(TestCase):
    async def test_login_and_logout_work_on_a_follower_other_changes_do_not(self):
        leader = await make_api(self)
        await leader.setup_admin()
        api = await make_api(self, guard=ReadOnlyGuard())
        # Pretend sync brought the admin account over.
        await api.store.put("user", ADMIN, (await leader.store.get("user", ADMIN)).data)
        cookie = await api.login()
        r = await api.client.post("/api/auth/tokens", json={"name": "x"}, cookie=cookie)
        self.assertEqual((r.status, r.json()["error"]), (409, "FOLLOWER_READONLY"))
        r = await api.client.post("/api/auth/change-password", cookie=cookie, json={
            "current_password": PASSWORD, "new_password": "a new long password"})
        self.assertEqual(r.status, 409)
        self.assertEqual((await api.client.post("/api/auth/logout", cookie=cookie)).status,
                         204)


class ParallelAttemptTests(TestCase):
    """Attempts sent at once are all admitted before the first one fails:
    they must still count against the limit (10 per client and minute)."""

    async def test_parallel_wrong_passwords_cannot_exceed_the_limit(self):
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred, ensureDeferred
        from twisted.internet.task import deferLater

        api = await make_api(self)
        await api.setup_admin()
        pending, checked = [], []

        def run(fn, *args):  # password checks wait until released
            d = Deferred()
            pending.append((d, fn, args))
            return d

        api.hasher._run = run
        bad = {"username": ADMIN, "password": "wrong password"}
        answers = [ensureDeferred(api.client.post("/api/auth/login", json=bad))
                   for _ in range(30)]
        for _ in range(2000):
            if all(a.called for a in answers):
                break
            if pending:
                d, fn, args = pending.pop(0)
                checked.append(1)
                d.callback(fn(*args))
            await deferLater(reactor, 0.001, lambda: None)
        statuses = sorted([(await a).status for a in answers])
        self.assertEqual(statuses, [401] * 10 + [429] * 20)
        self.assertEqual(len(checked), 10)
