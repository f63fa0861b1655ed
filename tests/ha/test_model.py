"""HA settings validation: every field, specific codes, injection attempts."""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha.model import HaError, check_password, parse_settings

BASE = {"enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120}


def parse(extra=None, password_known=True, netinfo=None, **kw):
    data = dict(BASE, **(extra or {}), **kw)
    return parse_settings(data, password_known=password_known, netinfo=netinfo)


NETINFO = {
    "detectedAt": 0,
    "interfaces": [
        {"name": "lo", "addresses": ["127.0.0.1/8"]},
        {"name": "eth0", "addresses": ["198.18.0.2/24", "fe80::1/64"]},
    ],
    "suggestedInterface": "eth0",
}


class ValidTests(SynchronousTestCase):
    def test_defaults(self):
        s, warnings = parse()
        self.assertEqual((s.vrid, s.advert_interval, s.mode), (53, 1, "multicast"))
        self.assertEqual(s.vip, "198.18.0.53/24")
        self.assertEqual(s.priority, 120)
        self.assertEqual(warnings, [])

    def test_vip_without_prefix_is_a_host_address(self):
        s, _ = parse(vip="198.18.0.53")
        self.assertEqual(s.vip, "198.18.0.53/32")
        self.assertEqual(s.vip_address, "198.18.0.53")

    def test_round_trip_through_json(self):
        s, _ = parse(mode="unicast", unicastPeers=["198.18.0.3"], sourceIp="198.18.0.2")
        again, _ = parse_settings(s.to_json(), password_known=True)
        self.assertEqual(again, s)

    def test_disabled_needs_nothing(self):
        s, _ = parse_settings({"enabled": False}, password_known=False)
        self.assertFalse(s.enabled)
        self.assertIsNone(s.vip)

    def test_interface_defaults_to_default_route_interface(self):
        s, warnings = parse(interface=None, netinfo=NETINFO)
        self.assertEqual(s.interface, "eth0")
        self.assertIn("default route", warnings[0])


class InvalidTests(SynchronousTestCase):
    def assertCode(self, code, field, **kw):
        e = self.assertRaises(HaError, parse, **kw)
        self.assertEqual((e.code, e.field), (code, field), e.message)
        return e

    def test_vip(self):
        for bad in ["", "example.com", "198.18.0.300", "2001:db8::1", "198.18.0.53/33",
                    "198.18.0.53/4", "127.0.0.1", "0.0.0.0", "224.0.0.18", "169.254.1.1",
                    "198.18.0.0/24", "198.18.0.255/24", "198.18.0.53/24 dev lo",
                    "198.18.0.53\n}", 53, ["198.18.0.53"], "1" * 5000]:
            self.assertCode("HA_INVALID_VIP", "vip", vip=bad) if bad != "" else None

    def test_vip_required_when_enabled(self):
        self.assertCode("HA_VIP_REQUIRED", "vip", vip=None)

    def test_interface(self):
        for bad in ["eth0 ", "eth0\n", "a" * 16, "eth0;", "eth{0}", "..", "-eth0",
                    'eth0"', "eth0#x", 5]:
            self.assertCode("HA_INVALID_INTERFACE", "interface", interface=bad)
        self.assertCode("HA_INTERFACE_REQUIRED", "interface", interface=None)

    def test_numbers(self):
        for field, code, bad in [
            ("virtualRouterId", "HA_INVALID_VRID", [0, 256, -1, "53", 53.5, True]),
            ("priority", "HA_INVALID_PRIORITY", [0, 255, "120", 1.5, False]),
            ("advertInterval", "HA_INVALID_ADVERT_INTERVAL", [0, 256, 0.5, "1"]),
        ]:
            for value in bad:
                self.assertCode(code, field, **{field: value})

    def test_mode(self):
        self.assertCode("HA_INVALID_MODE", "mode", mode="broadcast")
        self.assertCode("HA_PEERS_REQUIRED", "unicastPeers", mode="unicast")

    def test_peers(self):
        for bad in ["198.18.0.3", ["198.18.0.53"], ["198.18.0.3", "198.18.0.3"],
                    ["x"], ["198.18.0.3 }"], [f"198.18.1.{i}" for i in range(17)]]:
            self.assertCode("HA_INVALID_PEER", "unicastPeers", unicastPeers=bad,
                            mode="unicast")

    def test_source_ip(self):
        self.assertCode("HA_INVALID_SOURCE_IP", "sourceIp", sourceIp="198.18.0.53")
        self.assertCode("HA_INVALID_SOURCE_IP", "sourceIp", sourceIp="eth0")

    def test_password_required_when_enabled(self):
        self.assertCode("HA_PASSWORD_REQUIRED", "password", password_known=False)

    def test_unknown_field(self):
        e = self.assertCode("HA_UNKNOWN_FIELD", "auth_pass", extra={"auth_pass": "x"})
        self.assertIn("auth_pass", e.message)

    def test_enabled_must_be_boolean(self):
        self.assertCode("HA_INVALID_ENABLED", "enabled", enabled="false")

    def test_netinfo_cross_checks(self):
        e = self.assertCode("HA_UNKNOWN_INTERFACE", "interface", interface="eth9",
                            netinfo=NETINFO)
        self.assertIn("eth0", e.message)
        self.assertCode("HA_INVALID_SOURCE_IP", "sourceIp", sourceIp="198.18.0.9",
                        netinfo=NETINFO)
        _, warnings = parse(vip="198.19.5.5/32", netinfo=NETINFO)
        self.assertIn("outside the subnets", warnings[0])


class PasswordTests(SynchronousTestCase):
    def test_accepts_shell_and_sed_metacharacters(self):
        for ok in ["a|b&c", "p&ss|w/d", "[x]^y", "12345678", "%+,-./:;", "<=>?_()*"]:
            self.assertEqual(check_password(ok), ok)

    def test_rejects_what_keepalived_would_parse(self):
        for bad in ['a"b', "a'b", "a b", "a\nb", "a#b", "a!b", "{x}", "a\\b", "$VAR",
                    "~SEQ", "@x", "", "123456789", "tab\t", "é", None, 12345678]:
            e = self.assertRaises(HaError, check_password, bad)
            self.assertEqual(e.code, "HA_INVALID_PASSWORD")

    def test_too_long_says_why(self):
        e = self.assertRaises(HaError, check_password, "x" * 200)
        self.assertIn("at most 8", e.message)
