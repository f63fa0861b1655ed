"""
How queries are decided: the compiled snapshot against configuration
entities, without a store (see docs/FILTERING.md, "How a query is decided").
"""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.decision import ALLOW, BLOCK, PASS, REWRITE
from sentinel.dns.settings import DEFAULTS as DNS_DEFAULTS
from tests.filtering.helpers import World, wire

A, AAAA, MX, HTTPS = 1, 28, 15, 65


class Case(SynchronousTestCase):
    def setUp(self):
        self.world = World()

    def decide(self, name, ip="192.168.1.50", qtype=A, now=0.0):
        return self.world.policy(now).decide(ip, wire(name), qtype)

    def assertDecision(self, name, action, reason="", ip="192.168.1.50", qtype=A, now=0.0):
        d = self.decide(name, ip, qtype, now)
        self.assertEqual((d.action, d.reason), (action, reason), f"{name} from {ip}: {d}")
        return d


class BlocklistTests(Case):
    def test_entry_blocks_name_and_subdomains_not_parents(self):
        self.world.blocklist(1, "ads.example.com\n")
        self.assertDecision("ads.example.com", BLOCK, "blocklist:1")
        self.assertDecision("X.Deep.ADS.example.com", BLOCK, "blocklist:1")
        self.assertDecision("example.com", PASS)
        self.assertDecision("bads.example.com", PASS)
        self.assertDecision(".", PASS)

    def test_lowest_list_id_is_credited_and_exceptions_win(self):
        self.world.blocklist(2, "ads.example.com\nother.example\n")
        self.world.blocklist(1, "ads.example.com\n")
        self.world.blocklist(3, "@@||ok.ads.example.com^\n")
        self.assertDecision("ads.example.com", BLOCK, "blocklist:1")
        self.assertDecision("ok.ads.example.com", ALLOW, "blocklist:3")
        self.assertDecision("x.ok.ads.example.com", ALLOW, "blocklist:3")
        self.assertDecision("other.example", BLOCK, "blocklist:2")

    def test_listed_name_still_yields_to_allows_on_its_parents(self):
        # A name on a list is looked up before its parents are sliced only
        # when nothing can overrule lists; each of these can.
        self.world.blocklist(1, "x.ads.example.com\n")
        self.assertDecision("x.ads.example.com", BLOCK, "blocklist:1")
        self.world.blocklist(2, "@@||ads.example.com^\n")
        self.assertDecision("x.ads.example.com", ALLOW, "blocklist:2")
        self.world.delete("blocklist", 2)
        self.world.put("rule", 1, {"pattern": "example.com", "action": "allow"})
        self.assertDecision("x.ads.example.com", ALLOW, "rule:1")
        self.world.delete("rule", 1)
        self.world.put("client", 1, {"name": "c1", "addresses": ["192.168.1.50"]})
        self.world.put("rule", 2, {"pattern": "example.com", "action": "allow",
                                   "client_id": 1})
        self.assertDecision("x.ads.example.com", ALLOW, "rule:2")
        self.assertDecision("x.ads.example.com", BLOCK, "blocklist:1", ip="192.168.1.9")

    def test_modes_disabled_and_shadow(self):
        self.world.blocklist(1, "off.example\n", mode="disabled")
        self.world.blocklist(2, "shadow.example\nboth.example\n", mode="shadow")
        self.world.blocklist(3, "both.example\n")
        self.assertDecision("off.example", PASS)
        d = self.assertDecision("a.shadow.example", PASS)
        self.assertEqual(d.shadow, "blocklist:2")
        self.assertEqual(self.decide("both.example").reason, "blocklist:3")

    def test_list_without_contents_yet_is_ignored(self):
        self.world.put("blocklist", 1, {"name": "new", "url": "http://127.0.0.1/x"})
        self.assertEqual(self.world.plan().needed(), set())
        self.assertDecision("anything.example", PASS)

    def test_blocking_response_comes_from_dns_settings(self):
        self.world.blocklist(1, "ads.example.com\n")
        default = (DNS_DEFAULTS.blocking_mode, DNS_DEFAULTS.blocked_ttl)
        d = self.decide("ads.example.com")
        self.assertEqual((d.block_mode, d.ttl), default)
        self.world.put("setting", "dns", {"blocking_mode": "null", "blocked_ttl": 77})
        d = self.decide("ads.example.com")
        self.assertEqual((d.block_mode, d.ttl), ("null", 77))
        self.world.put("setting", "dns", {"blocking_mode": "bogus", "blocked_ttl": "x"})
        d = self.decide("ads.example.com")
        self.assertEqual((d.block_mode, d.ttl), default)


class RuleTests(Case):
    def rule(self, key, pattern, action="block", **more):
        self.world.put("rule", key, dict(pattern=pattern, action=action, **more))

    def test_name_and_subdomains(self):
        self.rule(1, "example.com")
        self.assertDecision("example.com", BLOCK, "rule:1")
        self.assertDecision("www.example.com", BLOCK, "rule:1")
        self.assertDecision("notexample.com", PASS)

    def test_subdomains_only(self):
        self.rule(1, "*.example.com")
        self.assertDecision("example.com", PASS)
        self.assertDecision("a.example.com", BLOCK, "rule:1")
        self.assertDecision("a.b.example.com", BLOCK, "rule:1")

    def test_exact_only(self):
        self.rule(1, "|example.com|")
        self.assertDecision("example.com", BLOCK, "rule:1")
        self.assertDecision("www.example.com", PASS)

    def test_allow_beats_block_at_any_depth(self):
        self.rule(1, "ads.example.com")
        self.rule(2, "example.com", "allow")
        self.assertDecision("x.ads.example.com", ALLOW, "rule:2")
        self.rule(3, "|example.com|", "allow")
        self.rule(2, "|example.com|", "allow")
        self.assertDecision("x.ads.example.com", BLOCK, "rule:1")
        self.assertDecision("example.com", ALLOW, "rule:2")

    def test_allow_rule_beats_blocklist_and_block_rule_beats_list_exception(self):
        self.world.blocklist(1, "ads.example.com\n@@||good.example.com^\n")
        self.rule(1, "ok.ads.example.com", "allow")
        self.rule(2, "good.example.com")
        self.assertDecision("ok.ads.example.com", ALLOW, "rule:1")
        self.assertDecision("good.example.com", BLOCK, "rule:2")

    def test_disabled_and_invalid_rules_are_ignored(self):
        self.rule(1, "a.example", enabled=False)
        self.rule(2, "bad pattern!")
        self.rule(3, "b.example")
        self.assertDecision("a.example", PASS)
        self.assertDecision("b.example", BLOCK, "rule:3")


class ClientTests(Case):
    def client(self, key, addresses, **more):
        self.world.put("client", key, dict(name=f"c{key}", addresses=addresses, **more))

    def test_most_specific_client_wins(self):
        self.client(1, ["10.0.0.0/8"])
        self.client(2, ["10.1.0.0/16"])
        self.client(3, ["10.1.2.3"])
        self.world.put("rule", 1, {"pattern": "x.example", "action": "block", "client_id": 1})
        self.world.put("rule", 2, {"pattern": "x.example", "action": "allow", "client_id": 2})
        policy = self.world.policy()
        self.assertEqual(policy.decide("10.9.9.9", wire("x.example"), A).reason, "rule:1")
        self.assertEqual(policy.decide("10.1.9.9", wire("x.example"), A).reason, "rule:2")
        d = policy.decide("10.1.2.3", wire("x.example"), A)
        self.assertEqual((d.action, d.client_name), (PASS, "c3"))  # own rules only
        self.assertEqual(policy.decide("11.0.0.1", wire("x.example"), A).client_name, "")

    def test_client_rules_beat_global_rules(self):
        self.client(1, ["192.168.1.7"])
        self.world.put("rule", 1, {"pattern": "video.example", "action": "allow"})
        self.world.put("rule", 2, {"pattern": "video.example", "action": "block",
                                   "client_id": 1})
        self.assertDecision("video.example", ALLOW, "rule:1")
        self.assertDecision("video.example", BLOCK, "rule:2", ip="192.168.1.7")

    def test_addresses_ipv6_and_mapped_ipv4(self):
        self.client(1, ["fd00::/64", "192.168.1.9"])
        self.world.put("client", 2, {"name": "kid", "addresses": ["fd00::9"],
                                     "kill_switch": True})
        policy = self.world.policy()
        for ip in ["fd00::1", "192.168.1.9", "::ffff:192.168.1.9", "fe80::1%eth0"]:
            self.assertEqual(policy.decide(ip, wire("a.example"), A).client_name,
                             "" if ip.startswith("fe80") else "c1", ip)
        self.assertEqual(policy.decide("fd00::9", wire("a.example"), A).reason, "client:2:paused")

    def test_own_blocklists_instead_of_global(self):
        self.world.blocklist(1, "global.example\n")
        self.world.blocklist(2, "kids.example\n", **{"global": False})
        self.client(1, ["192.168.1.7"], use_global_blocklists=False, blocklists=[2])
        self.client(2, ["192.168.1.8"], use_global_blocklists=True, blocklists=[2])
        self.assertDecision("global.example", BLOCK, "blocklist:1")
        self.assertDecision("kids.example", PASS)
        self.assertDecision("global.example", PASS, ip="192.168.1.7")
        self.assertDecision("kids.example", BLOCK, "blocklist:2", ip="192.168.1.7")
        self.assertDecision("kids.example", PASS, ip="192.168.1.8")

    def test_kill_switch_blocks_everything_even_rewrites_and_allows(self):
        self.client(1, ["192.168.1.7"], kill_switch=True)
        self.world.put("rule", 1, {"pattern": "ok.example", "action": "allow"})
        self.world.put("rewrite", 1, {"domain": "nas.home", "answer": "192.168.1.10"})
        for name in ["ok.example", "nas.home", "anything.example"]:
            d = self.assertDecision(name, BLOCK, "client:1:paused", ip="192.168.1.7")
            self.assertEqual(d.client_name, "c1")
        self.assertDecision("nas.home", REWRITE, "rewrite:1")


class RewriteTests(Case):
    def rewrite(self, key, domain, answer, **more):
        self.world.put("rewrite", key, dict(domain=domain, answer=answer, **more))

    def test_addresses_per_query_type(self):
        self.rewrite(1, "nas.home", "192.168.1.10", ttl=60)
        self.rewrite(2, "nas.home", "192.168.1.11")
        self.rewrite(3, "nas.home", "fd00::10")
        d = self.assertDecision("NAS.home", REWRITE, "rewrite:1")
        self.assertEqual(d.answers, ((1, "192.168.1.10"), (1, "192.168.1.11")))
        self.assertEqual(d.ttl, 60)
        self.assertEqual(self.decide("nas.home", qtype=AAAA).answers, ((28, "fd00::10"),))
        # Other types get an empty answer (NODATA), never the real records.
        self.assertEqual(self.decide("nas.home", qtype=MX).answers, ())
        self.assertEqual(self.decide("nas.home", qtype=HTTPS).action, REWRITE)
        self.assertDecision("x.nas.home", PASS)

    def test_cname_for_every_type(self):
        self.rewrite(1, "media.home", "nas.home")
        for qtype in (A, AAAA, MX):
            self.assertEqual(self.decide("media.home", qtype=qtype).answers, ((5, "nas.home."),))

    def test_wildcards_subdomains_only_most_specific_wins(self):
        self.rewrite(1, "*.home", "192.168.1.1")
        self.rewrite(2, "*.lab.home", "192.168.2.1")
        self.rewrite(3, "exact.lab.home", "192.168.3.1")
        self.assertDecision("home", PASS)
        self.assertEqual(self.decide("a.home").answers, ((1, "192.168.1.1"),))
        self.assertEqual(self.decide("a.b.lab.home").answers, ((1, "192.168.2.1"),))
        self.assertEqual(self.decide("exact.lab.home").answers, ((1, "192.168.3.1"),))

    def test_rewrite_beats_blocking_disabled_ignored(self):
        self.world.blocklist(1, "nas.home\nother.home\n")
        self.rewrite(1, "nas.home", "192.168.1.10")
        self.rewrite(2, "other.home", "192.168.1.12", enabled=False)
        self.assertDecision("nas.home", REWRITE, "rewrite:1")
        self.assertDecision("other.home", BLOCK, "blocklist:1")


class PauseTests(Case):
    def test_pause_passes_everything_until_it_expires(self):
        self.world.blocklist(1, "ads.example.com\n")
        self.world.put("rewrite", 1, {"domain": "nas.home", "answer": "192.168.1.10"})
        self.world.put("client", 1, {"name": "kid", "addresses": ["192.168.1.7"],
                                     "kill_switch": True})
        self.world.put("setting", "protection", {"paused": True, "until": 1000.0})
        self.assertDecision("ads.example.com", PASS, "protection:paused", now=999.0)
        self.assertDecision("nas.home", REWRITE, "rewrite:1", now=999.0)
        self.assertDecision("x.example", BLOCK, "client:1:paused", ip="192.168.1.7", now=999.0)
        self.assertEqual(self.world.plan(999.0).next_change, 1000.0)
        self.assertDecision("ads.example.com", BLOCK, "blocklist:1", now=1000.0)

    def test_pause_until_resumed(self):
        self.world.blocklist(1, "ads.example.com\n")
        self.world.put("setting", "protection", {"paused": True, "until": None})
        self.assertDecision("ads.example.com", PASS, "protection:paused", now=1e12)
        self.assertIsNone(self.world.plan(5.0).next_change)
        self.world.put("setting", "protection", {"paused": False})
        self.assertDecision("ads.example.com", BLOCK, "blocklist:1")


class SignatureTests(Case):
    def test_status_only_changes_do_not_change_the_policy(self):
        self.world.blocklist(1, "ads.example.com\n")
        before = self.world.plan().signature()
        data = dict(self.world.config.entities["blocklist"][1])
        data["status"] = {"checked_at": 5, "ok": True}
        self.world.put("blocklist", 1, data)
        self.assertEqual(self.world.plan().signature(), before)
        data["mode"] = "shadow"
        self.world.put("blocklist", 1, data)
        self.assertNotEqual(self.world.plan().signature(), before)


class RememberedDecisionTests(Case):
    """Decisions are remembered per name: asking again gives what a fresh snapshot says."""

    def test_same_answers_as_a_fresh_snapshot_for_every_type_and_client(self):
        self.world.blocklist(1, "ads.example.com\n@@||ok.ads.example.com^\n")
        self.world.blocklist(2, "shadow.example\n", mode="shadow")
        self.world.put("rewrite", 1, {"domain": "nas.home", "answer": "192.168.1.10"})
        self.world.put("rewrite", 2, {"domain": "nas.home", "answer": "fd00::10"})
        policy = self.world.policy()
        names = ["ads.example.com", "x.ads.example.com", "ok.ads.example.com",
                 "a.shadow.example", "nas.home", "www.example.org", "."]
        asked = [(name, qtype, ip) for _ in range(3) for name in names
                 for qtype in (A, AAAA, MX) for ip in ("192.168.1.50", "10.0.0.9")]
        for name, qtype, ip in asked:
            fresh = self.world.policy().decide(ip, wire(name), qtype)
            again = policy.decide(ip, wire(name), qtype)
            self.assertEqual((again.action, again.reason, again.shadow, again.answers),
                             (fresh.action, fresh.reason, fresh.shadow, fresh.answers),
                             (name, qtype, ip))

    def test_bounded(self):
        from sentinel.filtering import policy as module

        policy = self.world.policy()
        for i in range(module.DECIDED_LIMIT + 10):
            policy.decide("192.168.1.50", wire(f"n{i}.example"), A)
        profile = policy.profile_for("192.168.1.50")
        self.assertLessEqual(len(profile._decided), module.DECIDED_LIMIT)
