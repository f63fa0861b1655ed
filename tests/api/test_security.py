"""
Security properties of the admin API that cut across areas: values that
must never come back in an answer, and the cross-site and throttling rules
for cookie-authenticated requests (see docs/API.md, Security).
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.api.base import ApiError
from sentinel.api.cluster_schemas import JOIN_BODY
from sentinel.api.inputs import validate
from sentinel.auth.throttle import client_key
from tests.api.harness import ADMIN, PASSWORD, SAME_ORIGIN, make_api

MARK = "Zq7Secret"  # in every rejected value: must appear in no answer


class WriteOnlyValueTests(TestCase):
    """A password, secret or join code that fails its schema is not quoted
    back in the 400 (the UI shows that message on screen)."""

    def assertNotQuoted(self, r, status=400):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json()["error"], "VALIDATION_ERROR")
        self.assertNotIn(MARK.encode(), r.body)
        self.assertNotIn(MARK.lower().encode(), r.body.lower())

    async def test_rejected_passwords_and_secret_values_are_not_quoted(self):
        api = await make_api(self)
        c = api.client
        r = await c.post("/api/auth/setup", json={"username": ADMIN, "password": MARK[:7]})
        self.assertNotQuoted(r)
        self.assertEqual(r.json()["details"][0],
                         {"field": "password", "message": "is too short (at least 8 characters)"})
        cookie = await api.setup_admin()
        self.assertNotQuoted(await c.post("/api/auth/login", json={
            "username": ADMIN, "password": MARK * 200}))
        self.assertNotQuoted(await c.post("/api/auth/change-password", json={
            "current_password": MARK * 200, "new_password": PASSWORD}, cookie=cookie))
        self.assertNotQuoted(await c.post("/api/auth/change-password", json={
            "current_password": PASSWORD, "new_password": MARK * 200}, cookie=cookie))
        self.assertNotQuoted(await c.put("/api/secrets/api.key", json={
            "value": MARK * 1000}, cookie=cookie))
        r = await c.put("/api/secrets/api.key", json={"value": [MARK]}, cookie=cookie)
        self.assertNotQuoted(r)
        self.assertEqual(r.json()["message"], "value: must be of type string")
        # Other fields still say what was wrong with the value sent.
        r = await c.post("/api/auth/tokens", json={"name": MARK * 10}, cookie=cookie)
        self.assertIn(MARK, r.json()["message"])

    def test_a_rejected_join_code_is_not_quoted(self):
        with self.assertRaises(ApiError) as caught:
            validate(JOIN_BODY, {"joinCode": "SJ2." + MARK * 1000})
        self.assertNotIn(MARK, str(caught.exception.body()))


class ClientKeyTests(SynchronousTestCase):
    def test_an_ipv6_client_is_counted_by_its_64(self):
        self.assertEqual(client_key("192.0.2.7"), "192.0.2.7")
        self.assertEqual(client_key("::ffff:192.0.2.7"), "192.0.2.7")
        self.assertEqual(client_key("2001:db8:1:2::1"), "2001:db8:1:2::/64")
        self.assertEqual(client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64")
        self.assertEqual(client_key("fe80::1%eth0"), "fe80::/64")
        self.assertNotEqual(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"))
        self.assertEqual(client_key("not an address"), "not an address")


def _v6(n):
    return IPv6Address("TCP", f"2001:db8:1:2:{n:x}::{n:x}", 40000)


def _v4(n):
    return IPv4Address("TCP", f"192.0.2.{n}", 40000)


class LoginLimitTests(TestCase):
    async def _login(self, api, peer, password="wrong password", username=ADMIN):
        api.client.peer = peer
        return await api.client.post("/api/auth/login",
                                     json={"username": username, "password": password})

    async def test_new_ipv6_addresses_do_not_reset_the_count(self):
        api = await make_api(self)
        await api.setup_admin()
        for n in range(10):
            self.assertEqual((await self._login(api, _v6(n + 1))).status, 401)
        r = await self._login(api, _v6(99), PASSWORD)
        self.assertEqual((r.status, r.json()["error"]), (429, "TOO_MANY_ATTEMPTS"))
        # Another network is another client.
        peer = IPv6Address("TCP", "2001:db8:1:3::1", 40000)
        self.assertEqual((await self._login(api, peer, PASSWORD)).status, 200)

    async def test_guesses_from_many_addresses_lock_only_the_account_they_target(self):
        api = await make_api(self)
        await api.setup_admin()
        for n in range(30):  # three addresses' worth, each under its own limit
            self.assertEqual((await self._login(api, _v4(n + 1))).status, 401)
            api.clock.advance(10)
        r = await self._login(api, _v4(200), PASSWORD)  # a fresh address, right password
        self.assertEqual((r.status, r.json()["error"]), (429, "TOO_MANY_ATTEMPTS"))
        self.assertIn("this account", r.json()["message"])
        self.assertEqual(r.header("retry-after"), "300")  # 600 s after the first failure
        self.assertIsNone(r.header("set-cookie"))
        # Guesses at another name are not refused for it...
        self.assertEqual((await self._login(api, _v4(201), username="other")).status, 401)
        # ...nor is an open session, and the account opens again after the window.
        api.clock.advance(300)
        self.assertEqual((await self._login(api, _v4(200), PASSWORD)).status, 200)

    async def test_a_success_does_not_forget_the_accounts_failures(self):
        api = await make_api(self)
        await api.setup_admin()
        for n in range(29):
            self.assertEqual((await self._login(api, _v4(n + 1))).status, 401)
        self.assertEqual((await self._login(api, _v4(100), PASSWORD)).status, 200)
        self.assertEqual((await self._login(api, _v4(101))).status, 401)
        self.assertEqual((await self._login(api, _v4(102), PASSWORD)).status, 429)


class SameSiteTests(TestCase):
    async def test_a_page_on_another_port_of_this_host_cannot_log_out_or_change_settings(self):
        # SameSite=Strict cookies go along with requests from another port or
        # sub-domain of the same host (same site, other origin); a browser
        # says so with Sec-Fetch-Site even where it sends no Origin.
        api = await make_api(self)
        cookie = await api.setup_admin()
        same_site = {"sec-fetch-site": "same-site"}
        r = await api.client.post("/api/auth/logout", cookie=cookie, headers=same_site)
        self.assertEqual(r.status, 403)
        self.assertEqual(r.json()["error"], "CROSS_SITE_REQUEST")
        r = await api.client.put("/api/settings/ui", json={}, cookie=cookie, headers=same_site)
        self.assertEqual(r.status, 403)
        self.assertEqual((await api.client.get("/api/auth/me", cookie=cookie)).status, 200)
        r = await api.client.post("/api/auth/logout", cookie=cookie,
                                  headers={"sec-fetch-site": "same-origin",
                                           "origin": SAME_ORIGIN})
        self.assertEqual(r.status, 204)


class HeaderTests(TestCase):
    async def test_answers_outside_the_api_carry_the_security_headers(self):
        api = await make_api(self)  # no UI: "/" and other paths are the site's own 404
        for path in ("/", "/nothing-here"):
            r = await api.client.get(path)
            self.assertEqual(r.status, 404)
            self.assertEqual(r.header("x-content-type-options"), "nosniff")
            self.assertEqual(r.header("x-frame-options"), "DENY")
            self.assertIn("frame-ancestors 'none'", r.header("content-security-policy"))
            self.assertEqual(r.header("cross-origin-resource-policy"), "same-origin")
        cookie = await api.setup_admin()
        for path in ("/api/auth/me", "/api/nothing"):
            r = await api.client.get(path, cookie=cookie)
            self.assertEqual(r.header("cross-origin-resource-policy"), "same-origin")
            self.assertIsNone(r.header("access-control-allow-origin"))

    async def test_reads_with_the_cookie_from_another_origins_page_are_refused(self):
        # A page on another port of this host can make the browser fetch an
        # admin read with the cookie; it cannot see the answer, but a read may
        # have an effect (a join code is issued by a GET), so it is refused.
        api = await make_api(self)
        cookie = await api.setup_admin()
        token = await api.token(cookie)
        for site in ("same-site", "cross-site"):
            r = await api.client.get("/api/maintenance/export", cookie=cookie,
                                     headers={"sec-fetch-site": site})
            self.assertEqual(r.status, 403)
            self.assertEqual(r.json()["error"], "CROSS_SITE_REQUEST")
            # Scripts with a token, and what needs no login, are not affected.
            r = await api.client.get("/api/maintenance/export", token=token,
                                     headers={"sec-fetch-site": site})
            self.assertEqual(r.status, 200)
            r = await api.client.get("/api/health", headers={"sec-fetch-site": site})
            self.assertEqual(r.status, 200)
        for site in ("same-origin", "none"):  # the UI itself; a typed address
            r = await api.client.get("/api/maintenance/export", cookie=cookie,
                                     headers={"sec-fetch-site": site})
            self.assertEqual(r.status, 200)

    async def test_form_media_types_are_refused_with_the_cookie_even_without_a_body(self):
        # An HTML form can post text/plain, urlencoded or multipart without a
        # preflight; endpoints without a body (logout) accepted it whatever
        # the type, so only the Origin header stood in the way.
        api = await make_api(self)
        cookie = await api.setup_admin()
        for ctype in ("text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "Text/Plain;charset=UTF-8"):
            r = await api.client.post("/api/auth/logout", data=b"", cookie=cookie,
                                      headers={"content-type": ctype})
            self.assertEqual(r.status, 415, ctype)
            self.assertEqual(r.json()["error"], "UNSUPPORTED_MEDIA_TYPE")
        self.assertEqual((await api.client.get("/api/auth/me", cookie=cookie)).status, 200)
        # A script with a token may post an empty form body (curl -d '').
        token = await api.token(cookie)
        r = await api.client.delete("/api/auth/tokens/1", token=token,
                                    headers={"content-type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 204)
        # The UI: no body, no Content-Type.
        self.assertEqual((await api.client.post("/api/auth/logout", cookie=cookie)).status, 204)


class SetupFromTheLanTests(TestCase):
    """Until the admin exists, anyone who reaches the node could create it: only
    a device that may use this node's DNS (the LAN) may, not one from the
    internet (a port forwarded by mistake, a node on a public address)."""

    async def _setup(self, client, peer):
        client.peer = peer
        return await client.post("/api/auth/setup",
                                 json={"username": ADMIN, "password": PASSWORD})

    async def test_a_public_address_cannot_create_the_admin(self):
        api = await make_api(self)
        r = await self._setup(api.client, IPv4Address("TCP", "198.18.0.7", 40000))
        self.assertEqual((r.status, r.json()["error"]), (403, "SETUP_FROM_LAN_ONLY"))
        self.assertIn("from the local network", r.json()["message"])
        self.assertEqual((await api.client.get("/api/auth/status")).json()["configured"], False)
        r = await self._setup(api.client, IPv6Address("TCP", "2001:db8::7", 40000))
        self.assertEqual(r.status, 403)
        r = await self._setup(api.client, IPv6Address("TCP", "::ffff:192.168.1.20", 40000))
        self.assertEqual(r.status, 201)  # a LAN device, through a dual-stack socket

    async def test_the_daemon_asks_its_dns_access_list(self):
        from tests.api.wiring import wired_api

        w, client, token, _ = await wired_api(self)  # the admin made from 127.0.0.1
        outside = IPv4Address("TCP", "198.18.0.7", 40000)
        r = await self._setup(client, outside)
        self.assertEqual((r.status, r.json()["error"]), (403, "SETUP_FROM_LAN_ONLY"))
        r = await self._setup(client, IPv4Address("TCP", "10.1.2.3", 40000))
        self.assertEqual((r.status, r.json()["error"]), (409, "ALREADY_CONFIGURED"))
