"""
No endpoint leaks a secret: with secrets, an account, API tokens and
sessions in place, every GET route of the real daemon (from its OpenAPI
document, so new routes are scanned automatically; path ids filled from
the collections that list them) is fetched with a token, with a session
cookie and without credentials, and no password, password hash, secret
value or sealed blob, session token or digest, API token or token digest
may appear in any answer (body or headers).
"""

import os
import re
import secrets as pyrandom
import sqlite3

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.api import isolated
from tests.api.daemon_admin import PASSWORD, create_token, login, scratch_dir, setup_admin

NEW_PASSWORD = "another long password " + pyrandom.token_hex(4)


def _ids_in(value, found):
    """Every value of an "id"-like field in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if (k == "id" or k.endswith("_id") or k == "name") and isinstance(v, (int, str)):
                found.append(str(v))
            _ids_in(v, found)
    elif isinstance(value, list):
        for v in value:
            _ids_in(v, found)
    return found


class LeakScanTests(SynchronousTestCase):
    def test_no_get_route_returns_secrets_hashes_or_tokens(self):
        reason = isolated.skip_reason()
        if reason:
            raise SkipTest(reason)
        ns = isolated.loopback_namespace(self)
        d = isolated.IsolatedDaemon(self, ns, data_dir=scratch_dir(self)).start()
        forbidden = {}

        def forbid(label, value):
            if value:
                forbidden[value] = label

        cookie1 = setup_admin(d)
        cookie2 = login(d)
        token1 = create_token(d, cookie1, "first")
        token2 = create_token(d, cookie2, "second")
        auth = {"Authorization": f"Bearer {token1}"}
        values = {name: "v-" + pyrandom.token_urlsafe(24) for name in ("api.key", "smtp.password")}
        for name, value in values.items():
            self.assertEqual(d.request("PUT", f"/api/secrets/{name}", {"value": value},
                                       headers=auth).status, 204)
            forbid(f"secret {name}", value)
        r = d.post("/api/auth/change-password", {"current_password": PASSWORD,
                                                 "new_password": NEW_PASSWORD}, headers=auth)
        self.assertEqual(r.status, 204, r.body)
        cookie3 = login(d, password=NEW_PASSWORD)
        forbid("old password", PASSWORD)
        forbid("new password", NEW_PASSWORD)
        for i, c in enumerate((cookie1, cookie2, cookie3)):
            forbid(f"session token {i}", c.split("=", 1)[1])
        for i, t in enumerate((token1, token2)):
            forbid(f"api token {i}", t)
            # snt_<id>_<secret>: the secret is 43 urlsafe characters and may
            # itself hold "_" (rsplit took a fragment of it, as short as one
            # character, which then "leaked" by chance in unrelated text).
            secret = t.split("_", 2)[2]
            self.assertEqual(len(secret), 43)
            forbid(f"api token secret {i}", secret)
        self._forbid_stored(d, forbid)
        self.assertGreaterEqual(len(forbidden), 15)

        doc = d.get("/api/openapi.json").json()
        paths = [p for p, ops in doc["paths"].items() if "get" in ops]
        scanned = 0
        for path in sorted(paths):
            for url in self._urls(d, path, auth):
                for headers in (auth, {"Cookie": cookie3}, {}):
                    r = d.get(url, headers=headers)
                    scanned += 1
                    self.assertLess(r.status, 500, f"GET {url}: {r.status} {r.body[:300]!r}")
                    text = r.body.decode("utf-8", "replace") + "\n" + str(r.headers)
                    for value, label in forbidden.items():
                        self.assertNotIn(value, text, f"GET {url} leaks the {label}")
        self.assertGreater(scanned, 3 * len(paths) - 1)
        # Nor does the daemon's log, after all of the above.
        log = d.log()
        self.assertIn("/api/secrets/", log)  # the requests were logged...
        for value, label in forbidden.items():
            self.assertNotIn(value, log, f"the log shows the {label}")  # ...not the values

    def _forbid_stored(self, d, forbid):
        """The hashes, digests and sealed values as the database holds them."""
        db = sqlite3.connect(os.path.join(d.data_dir, "sentinel.db"))
        try:
            rows = db.execute("SELECT kind, key, data FROM config WHERE data IS NOT NULL "
                              "AND kind IN ('user', 'session', 'api_token', 'secret')").fetchall()
        finally:
            db.close()
        kinds = {kind for kind, _, _ in rows}
        self.assertEqual(kinds, {"user", "session", "api_token", "secret"})
        for kind, key, data in rows:
            if kind == "session":
                forbid("session digest", key)
            for label, value in re.findall(r'"(password|hash|sealed)":"([^"]+)"', data):
                forbid(f"{kind} {label}", value)
                for part in value.split("$"):
                    if len(part) >= 16:
                        forbid(f"{kind} {label} part", part)

    def _urls(self, d, path, auth):
        """URLs for a GET path: parameters filled from the listing above it."""
        if "{" not in path:
            return [path]
        parent = path[: path.index("{")].rstrip("/")
        ids = []
        r = d.get(parent, headers=auth)
        if r.status == 200:
            try:
                ids = _ids_in(r.json(), [])
            except ValueError:
                pass
        urls = []
        for value in (ids[:3] or ["1"]):
            urls.append(re.sub(r"\{[^}]+\}", value, path, count=1))
        return [re.sub(r"\{[^}]+\}", "1", u) for u in urls]
