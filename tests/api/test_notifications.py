"""/api/notifications: feed, unread count, mark read."""

from twisted.trial.unittest import TestCase

from sentinel.api.base import ApiError
from tests.api.harness import EVIL_ORIGIN, make_api


class Follower:
    async def check(self, call):
        raise ApiError(409, "FOLLOWER_READONLY", "read-only")


class NotificationsTests(TestCase):
    async def setUp(self, guard=None):
        self.api = await make_api(self, guard=guard)
        self.cookie = await self.api.login() if guard else await self.api.setup_admin()
        self.ids = [await self.api.store.add_notification("warning", "failover", f"event {i}")
                    for i in range(5)]

    async def test_feed_paging_unread(self):
        c, cookie = self.api.client, self.cookie
        r = await c.get("/api/notifications?limit=2", cookie=cookie)
        body = r.json()
        self.assertEqual([n["message"] for n in body["notifications"]], ["event 4", "event 3"])
        self.assertEqual(body["unread"], 5)
        self.assertEqual(body["next_before_id"], self.ids[3])
        first = body["notifications"][0]
        self.assertEqual(set(first), {"id", "ts", "level", "kind", "message", "read"})
        self.assertEqual((first["level"], first["kind"], first["read"]),
                         ("warning", "failover", False))
        r = await c.get(f"/api/notifications?limit=10&before_id={body['next_before_id']}",
                        cookie=cookie)
        self.assertEqual([n["message"] for n in r.json()["notifications"]],
                         ["event 2", "event 1", "event 0"])
        self.assertIsNone(r.json()["next_before_id"])
        r = await c.get("/api/notifications/unread-count", cookie=cookie)
        self.assertEqual(r.json(), {"unread": 5})

    async def test_mark_one_and_all(self):
        c, cookie = self.api.client, self.cookie
        r = await c.post(f"/api/notifications/{self.ids[1]}/read", cookie=cookie)
        self.assertEqual(r.status, 204)
        self.assertEqual((await c.get("/api/notifications/unread-count",
                                      cookie=cookie)).json()["unread"], 4)
        r = await c.get("/api/notifications?unread_only=true", cookie=cookie)
        self.assertNotIn(self.ids[1], [n["id"] for n in r.json()["notifications"]])
        # Marking again is fine.
        self.assertEqual((await c.post(f"/api/notifications/{self.ids[1]}/read",
                                       cookie=cookie)).status, 204)
        r = await c.post("/api/notifications/read-all", json={}, cookie=cookie)
        self.assertEqual(r.json(), {"marked": 4})
        self.assertEqual(await self.api.store.unread_notifications(), 0)

    async def test_unknown_ids_404_bad_query_400(self):
        c, cookie = self.api.client, self.cookie
        for nid in ("999", "0", "abc"):
            r = await c.post(f"/api/notifications/{nid}/read", cookie=cookie)
            self.assertEqual((r.status, r.json()["error"]), (404, "NOT_FOUND"), nid)
        for q in ("limit=0", "limit=1000", "limit=x", "before_id=-1", "unread_only=maybe"):
            r = await c.get("/api/notifications?" + q, cookie=cookie)
            self.assertEqual(r.status, 400, q)
        self.assertEqual(await self.api.store.unread_notifications(), 5)

    async def test_auth_and_origin(self):
        c = self.api.client
        self.assertEqual((await c.get("/api/notifications")).status, 401)
        self.assertEqual((await c.post("/api/notifications/read-all", json={})).status, 401)
        r = await c.post("/api/notifications/read-all", json={}, cookie=self.cookie,
                         headers={"origin": EVIL_ORIGIN})
        self.assertEqual(r.status, 403)
        self.assertEqual(await self.api.store.unread_notifications(), 5)


class FollowerNotificationsTests(TestCase):
    async def test_marking_read_works_on_a_follower(self):
        leader = await make_api(self)
        await leader.setup_admin()
        api = await make_api(self, guard=Follower())
        await api.store.put("user", "admin", (await leader.store.get("user", "admin")).data)
        cookie = await api.login()
        await api.store.add_notification("info", "sync", "hello")
        r = await api.client.post("/api/notifications/read-all", json={}, cookie=cookie)
        self.assertEqual(r.json(), {"marked": 1})
        r = await api.client.put("/api/settings/ui", json={}, cookie=cookie)
        self.assertEqual(r.status, 409)  # while other changes are refused
