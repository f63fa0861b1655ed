"""
Inputs the hostile-input run (tests/api/test_hostile_input.py) found
answered with a 500 (or worse), each pinned down: header bytes that are
not UTF-8, a path that is not UTF-8 once %-decoded, and digits that are
not ASCII ("²", "１", "١": str.isdigit() takes them, int() refuses the
first and reads the others as 1).
"""

from twisted.trial.unittest import TestCase

from sentinel.options import parse_port
from tests.api.wiring import wired_api


class InputEdgeTests(TestCase):
    async def setUp(self):
        self.w, self.client, self.token, self.cookie = await wired_api(self)

    def assertError(self, r, status, code):
        self.assertEqual((r.status, r.json().get("error")), (status, code), r)
        self.assertIsInstance(r.json().get("message"), str)
        self.assertTrue(r.header("content-type").startswith("application/json"), r)

    async def test_entity_ids_in_other_digits_are_unknown_and_delete_nothing(self):
        r = await self.client.post("/api/rules", json={"pattern": "a.example", "action": "block"},
                                   token=self.token)
        self.assertEqual(r.json()["id"], 1)
        for path in ("/api/rules/%C2%B2", "/api/rules/%EF%BC%91", "/api/rules/%D9%A1"):
            self.assertError(await self.client.get(path, token=self.token), 404, "NOT_FOUND")
            self.assertError(await self.client.delete(path, token=self.token), 404, "NOT_FOUND")
        r = await self.client.get("/api/rules/1", token=self.token)
        self.assertEqual((r.status, r.json()["pattern"]), (200, "a.example"))

    async def test_header_bytes_that_are_not_utf8_are_400(self):
        r = await self.client.get("/api/auth/me", headers={"authorization": b"Bearer \xff"})
        self.assertError(r, 400, "BAD_HEADER")
        self.assertIn("authorization", r.json()["message"])
        r = await self.client.get("/api/auth/me", token=self.token, headers={"host": b"\xc3"})
        self.assertError(r, 400, "BAD_HEADER")
        r = await self.client.post("/api/rules", data=b"{}", token=self.token,
                                   headers={"content-type": b"application/json\xff"})
        self.assertError(r, 400, "BAD_HEADER")
        r = await self.client.post("/api/rules", data=b"{}", cookie=self.cookie,
                                   headers={"content-type": "application/json",
                                            "origin": b"http://\xe9.example"})
        self.assertError(r, 400, "BAD_HEADER")
        r = await self.client.get("/api/rules", token=self.token)
        self.assertEqual((r.status, r.json()), (200, {"items": []}))

    async def test_a_path_that_is_not_utf8_is_400_in_the_error_shape(self):
        for path in ("/api/rules/%ff", "/api/%C3", "/metrics/%ff"):
            self.assertError(await self.client.get(path, token=self.token), 400, "BAD_REQUEST")

    async def test_upstream_ports_in_other_digits_are_refused(self):
        for spec in ("198.18.0.1:\u00b2", "[::1]:\u00b2", "tls://198.18.0.1:\u00b2",
                     "198.18.0.1:\uff15\uff13"):
            r = await self.client.put("/api/dns/settings", json={"upstreams": [spec]},
                                      token=self.token)
            self.assertError(r, 400, "VALIDATION_ERROR")
        r = await self.client.get("/api/dns/settings", token=self.token)
        self.assertNotIn("198.18.0.1:53", r.json()["upstreams"])
        self.assertRaises(ValueError, parse_port, "\uff15\uff13")

    async def test_a_vip_prefix_in_other_digits_is_refused(self):
        for vip in ("192.168.1.53/\u00b2", "192.168.1.53/\uff12\uff14"):
            r = await self.client.put("/api/cluster/ha/config", json={"vip": vip},
                                      token=self.token)
            self.assertError(r, 400, "HA_INVALID_VIP")
        r = await self.client.get("/api/cluster/ha/config", token=self.token)
        self.assertIsNone(r.json()["vip"])

    async def test_a_host_name_the_router_cannot_take_is_400_in_the_error_shape(self):
        # The sync paths are exempt from the host policy (so is every path
        # with --http-hosts '*'): the name reached Klein's router.
        for host in ("a" * 100, "a..b", "x" * 8000):
            r = await self.client.get("/api/cluster/sync/changes", headers={"host": host})
            self.assertError(r, 400, "BAD_HEADER")
        r = await self.client.get("/api/cluster/sync/changes", headers={"host": "sentinel"})
        self.assertEqual(r.status, 401, r)  # a valid name: on to the signature check

    async def test_numbers_beyond_float_range_are_refused_not_stored_as_infinity(self):
        for literal in (b"1e999", b"-1E+400"):
            r = await self.client.put("/api/settings/ui", data=b'{"x": %s}' % literal,
                                      token=self.token,
                                      headers={"content-type": "application/json"})
            self.assertError(r, 400, "BAD_JSON")
        r = await self.client.get("/api/settings/ui", token=self.token)
        self.assertNotIn(b"Infinity", r.body)
        self.assertNotIn("x", r.json())
        r = await self.client.put("/api/settings/ui", data=b'{"x": 1e308, "y": 1e-400}',
                                  token=self.token, headers={"content-type": "application/json"})
        self.assertEqual((r.status, r.json()["x"], r.json()["y"]), (200, 1e308, 0.0))

    async def test_a_nul_in_a_query_value_is_400(self):
        # PostgreSQL refuses a NUL in any parameter: the query-log filters
        # were a 500 there (SENTINEL_HOSTILE_PG=1 SENTINEL_HOSTILE_ALL=1).
        for query in ("domain=%00", "client=a%00b", "q=%00"):
            path = "/api/rules?" + query if query.startswith("q=") else "/api/query-logs?" + query
            r = await self.client.get(path, token=self.token)
            self.assertError(r, 400, "VALIDATION_ERROR")
            self.assertEqual(r.json()["details"][0]["field"], query.split("=")[0])
        r = await self.client.get("/api/query-logs?domain=example", token=self.token)
        self.assertEqual(r.status, 200, r)
