"""Joining, leaving, the leader URL, and the read-only guard (in memory)."""

from twisted.internet.defer import ensureDeferred

from sentinel.cluster.status import SyncError
from tests.cluster.pair import SyncTestCase
from tests.cluster.support import ADMIN, live, new_box


class JoinTests(SyncTestCase):
    async def test_join_then_follow(self):
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        await self.join()
        self.assertEqual(self.follower.state.role, "follower")
        self.assertEqual(self.follower.machine.effective, "follower")
        applied = await self.sync()
        self.assertEqual(applied.mode, "full")
        self.assertEqual(await live(self.follower), await live(self.leader))
        await self.leader.store.create("rule", {"pattern": "more.example"})
        self.assertEqual((await self.sync()).mode, "changes")
        self.assertEqual(await live(self.follower), await live(self.leader))

    async def test_join_code_needs_leader(self):
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.assertEqual((status, body["error"]), (409, "NOT_LEADER"))

    async def test_join_code_only_while_the_leader_owns_the_vip(self):
        """The guide: leader enabled AND effective role leader."""
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://192.168.1.53:8080"})
        self.assertEqual(status, 200, body)
        self.leader.machine.set_override("follower")  # standby: the VIP is elsewhere
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.assertEqual((status, body["error"]), (409, "NOT_LEADER"))
        self.assertIn("does not own the VIP", body["message"])
        self.leader.machine.set_override("leader")
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["joinCode"].startswith("SJ2."))

    async def test_join_code_needs_admin(self):
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code",
                                       headers={})
        self.assertEqual(status, 401)

    async def test_enable_leader_validates_and_warns(self):
        for bad in ("192.168.1.53", "ftp://192.168.1.53", "http://192.168.1.53:8080/cluster",
                    "http://admin:pw@192.168.1.53", "http://192.168.1.53:80808"):
            status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                           {"leaderUrl": bad})
            # The request schema says what a leader URL is (no long regex echoed).
            self.assertEqual((status, body["error"]), (400, "VALIDATION_ERROR"), bad)
            self.assertEqual(body["message"], "leaderUrl: must be an http(s) URL with a host "
                             "and an optional port, nothing else (e.g. http://192.168.1.53:8080)")
        self.assertEqual(self.leader.state.role, "standalone")
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://127.0.0.1:8080"})
        self.assertEqual(status, 200)
        self.assertIn("loopback", body["warnings"][0])

    async def test_enable_leader_twice_keeps_secret(self):
        code = await self.join()
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        await self.sync()  # the follower is still accepted
        self.assertIsNotNone(code)

    async def test_expired_code(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.clock.advance(3601)
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower",
                                       {"joinCode": body["joinCode"]})
        self.assertEqual((status, body["error"]), (400, "JOIN_CODE_EXPIRED"))
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_the_code_does_not_carry_the_cluster_secret(self):
        import base64

        code = await self.join()
        secret = self.leader.state.membership.secret
        payload = code.split(".")[1]
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        self.assertNotIn(secret, raw)
        self.assertNotIn(base64.b64encode(secret), raw)
        self.assertNotIn(base64.urlsafe_b64encode(secret).rstrip(b"="), raw)
        self.assertEqual(self.follower.state.membership.secret, secret)  # joined anyway

    async def test_a_code_joins_one_node_once(self):
        code = await self.join()
        await self.call(self.to_follower, "POST", "/api/cluster/leave", {})
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": code})
        self.assertEqual((status, body["error"]), (400, "JOIN_CODE_USED"), body)
        self.assertEqual(self.follower.state.role, "standalone")
        # A new code works.
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower",
                                       {"joinCode": body["joinCode"]})
        self.assertEqual(status, 200, body)

    async def test_the_leader_enforces_the_expiry(self):
        from sentinel.cluster import joincode

        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        self.clock.advance(3601)
        # Someone edits the expiry inside the code (the check is no MAC).
        parsed = joincode.parse(body["joinCode"], 0)
        forged = joincode.make(parsed.leader_url, parsed.code_id, parsed.key,
                               self.clock.seconds() + 3600)
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": forged})
        self.assertEqual((status, body["error"]), (400, "JOIN_CODE_EXPIRED"), body)
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_codes_from_older_versions_are_refused_plainly(self):
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower",
                                       {"joinCode": "SJ1.eyJ1IjoiIn0.0badc0de"})
        self.assertEqual((status, body["error"]), (400, "INVALID_JOIN_CODE"))
        self.assertIn("older", body["message"])

    async def test_garbage_code(self):
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": "hello"})
        self.assertEqual((status, body["error"]), (400, "INVALID_JOIN_CODE"))

    async def test_secret_checked_before_saving(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        code = body["joinCode"]
        # The leader leaves and is enabled again: a new secret, old codes fail.
        await self.call(self.to_leader, "POST", "/api/cluster/leave", {})
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": code})
        self.assertEqual((status, body["error"]), (400, "JOIN_CODE_USED"))
        self.assertIn("Nothing was saved", body["message"])
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_unreachable_leader_reported_nothing_saved(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")

        class Refusing:
            def request(self, *a, **kw):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError("Connection refused"))

        self.follower.leader_http = Refusing()
        status, result = await self.call(self.to_follower, "POST",
                                         "/api/cluster/configure-follower",
                                         {"joinCode": body["joinCode"]})
        self.assertEqual((status, result["error"]), (502, "LEADER_UNREACHABLE"))
        self.assertEqual(self.follower.state.role, "standalone")

    async def test_code_reaching_itself_refused(self):
        await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                        {"leaderUrl": "http://198.18.0.53:8080"})
        _, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        # The leader pastes its own code: the URL reaches itself.
        status, result = await self.call(self.to_leader, "POST",
                                         "/api/cluster/configure-follower",
                                         {"joinCode": body["joinCode"]})
        self.assertEqual((status, result["error"]), (409, "SELF"))
        self.assertEqual(self.leader.state.role, "leader")

    async def test_follower_leader_url_change_saved_even_if_unreachable(self):
        await self.join()
        await self.sync()

        class Refusing:
            def request(self, *a, **kw):
                from twisted.internet.defer import fail
                from twisted.internet.error import ConnectionRefusedError

                return fail(ConnectionRefusedError("Connection refused"))

        self.follower.leader_http = Refusing()
        status, body = await self.call(self.to_follower, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.99:8080"})
        self.assertEqual((status, body["reachable"], body["error"]["code"]),
                         (200, False, "LEADER_UNREACHABLE"))
        self.assertEqual(self.follower.state.membership.leader_url, "http://198.18.0.99:8080")
        self.assertEqual(self.follower.state.role, "follower")
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        self.assertEqual(e.code, "LEADER_UNREACHABLE")
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leader-url",
                                       {"leaderUrl": "http://198.18.0.99:8080"})
        self.assertEqual((status, body["error"]), (409, "NOT_FOLLOWER"))

    async def test_promoted_follower_never_reuses_ids_deleted_before_it_joined(self):
        s = self.leader.store
        for name in ("ads", "malware", "old"):
            await s.create("blocklist", {"name": name})
        await s.create("client", {"name": "kid", "blocklists": [3]})
        await s.delete("blocklist", "3")  # the kid's reference is stale now
        await self.join()
        await self.sync()
        # The leader is gone for good: the follower is promoted.
        status, _ = await self.call(self.to_follower, "POST", "/api/cluster/leave", {})
        self.assertEqual(status, 200)
        status, _ = await self.call(self.to_follower, "POST", "/api/cluster/enable-leader",
                                    {"leaderUrl": "http://198.18.0.53:8080"})
        self.assertEqual(status, 200)
        created = await self.follower.store.create("blocklist", {"name": "new"})
        self.assertEqual(created.key, "4")  # not 3: the kid does not get the new list

    async def test_leave_keeps_configuration(self):
        await self.leader.store.create("rule", {"pattern": "ads.example"})
        await self.join()
        await self.sync()
        status, body = await self.call(self.to_follower, "POST", "/api/cluster/leave", {})
        self.assertEqual((status, body["was"]), (200, "follower"))
        self.assertEqual(self.follower.state.role, "standalone")
        self.assertEqual(len(await self.follower.store.list("rule")), 1)
        status, _ = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual(status, 201)  # writable again

    async def test_a_follower_whose_node_key_changed_stays_a_readonly_follower(self):
        """node.key replaced: the stored cluster secret cannot be opened.  The
        node must not turn into a writable standalone node; it stays a
        follower, is not ready (it cannot sync) and says why; joining again
        fixes it."""
        code = await self.join()
        await self.sync()
        state = self.follower.state
        state._box = new_box()  # what a restart with another node.key sees
        await state.load()
        self.assertEqual((state.role, state.read_only, state.keys), ("follower", True, None))
        self.assertIn("node.key", state.problem)
        status, body = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual((status, body["error"]), (409, "FOLLOWER_READONLY"))
        self.clock.advance(60)
        ready = self.follower.readiness.answer()
        self.assertFalse(ready["ok"])
        self.assertIn("join the cluster again", ready["reason"])
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        code = body["joinCode"]
        status, body = await self.call(self.to_follower, "POST",
                                       "/api/cluster/configure-follower", {"joinCode": code})
        self.assertEqual(status, 200, body)
        self.assertIsNone(state.problem)
        await self.sync()
        self.assertTrue(self.follower.readiness.answer()["ok"])

    async def test_a_leader_whose_node_key_changed_keeps_its_role(self):
        await self.join()
        state = self.leader.state
        state._box = new_box()
        await state.load()
        self.assertEqual((state.role, state.keys), ("leader", None))
        self.assertIn("enable the leader again", state.problem)
        with self.assertRaises(SyncError):
            await self.sync()  # the follower cannot authenticate any more
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://198.18.0.53:8080"})
        self.assertEqual(status, 200, body)
        self.assertIsNotNone(state.keys)
        self.assertIsNone(state.problem)


class GuardTests(SyncTestCase):
    async def test_follower_refuses_mutations_except_exempt(self):
        await self.join()
        status, body = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual(status, 409)
        self.assertEqual(body, {"error": "FOLLOWER_READONLY", "message":
                                "This node is a follower. Make changes on the leader/VIP."})
        status, _ = await self.call(self.to_follower, "POST", "/api/auth/logout", {})
        self.assertEqual(status, 200)
        status, _ = await self.call(self.to_leader, "POST", "/api/things", {})
        self.assertEqual(status, 201)

    async def test_failover_follower_stays_readonly(self):
        await self.join()
        self.follower.machine.set_override("leader")
        self.assertEqual(self.follower.machine.effective, "leader")
        status, body = await self.call(self.to_follower, "POST", "/api/things", {})
        self.assertEqual((status, body["error"]), (409, "FOLLOWER_READONLY"))
        _, status_body = await self.call(self.to_follower, "GET", "/api/cluster/status")
        self.assertTrue(status_body["failover"])
        self.assertIn("failover active: leader unreachable", status_body["message"])

    async def test_same_origin_check_with_real_headers(self):
        # (site.py read headers as bytes and compared them with str.)
        ok = dict(ADMIN, Origin="http://node", Host="node")
        del ok["Authorization"]
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers=dict(ok, Authorization="Bearer admin"))
        self.assertEqual(status, 200, body)
        self.leader.site.gate.authenticators["admin"].authenticate = _cookie_admin
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers={"Origin": "http://evil.example",
                                                "Host": "node", "Cookie": "s=1"})
        self.assertEqual((status, body["error"]), (403, "CROSS_SITE_REQUEST"))
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/leave", {},
                                       headers={"Origin": "http://node", "Host": "node",
                                                "Cookie": "s=1"})
        self.assertEqual(status, 200, body)

    async def test_cluster_endpoints_exempt(self):
        await self.join()
        for spec, _ in self.follower.site.endpoints:
            if spec.path.startswith("/api/cluster/"):
                self.assertTrue(spec.readonly_exempt or not spec.mutating, spec.path)


async def _cookie_admin(request):
    from sentinel.api.base import Principal

    return Principal("admin", "session") if request.getHeader("cookie") else None
