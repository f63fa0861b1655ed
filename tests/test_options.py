"""Command-line options and environment variables -> Config."""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.config import ConfigError
from sentinel.dns.upstreamspec import DEFAULT_UPSTREAMS, UpstreamSpecError, parse_upstream
from sentinel.options import SentinelOptions, build_config, parse_bool


def config(argv=(), env=None):
    opts = SentinelOptions(environ=env or {})
    opts.parseOptions(list(argv))
    return opts.config


class DefaultsTests(SynchronousTestCase):
    def test_defaults(self):
        c = config()
        self.assertEqual(c.data_dir, "/var/lib/sentinel")
        self.assertEqual(c.dns_port, 53)
        self.assertEqual(c.dns_interfaces, ())
        self.assertEqual(c.http_port, 8080)
        self.assertEqual(c.http_interface, "")
        self.assertEqual(c.database, "sqlite:////var/lib/sentinel/sentinel.db")
        self.assertEqual(c.upstreams, DEFAULT_UPSTREAMS)
        self.assertEqual(c.role_file, "/var/lib/sentinel/sentinel/cluster_role")
        self.assertFalse(c.debug)

    def test_derived_defaults_follow_data_dir(self):
        c = config(["--data-dir", "/data"])
        self.assertEqual(c.database, "sqlite:////data/sentinel.db")
        self.assertEqual(c.role_file, "/data/sentinel/cluster_role")
        self.assertEqual(c.key_file, "/data/node.key")
        self.assertEqual(c.ha_config_file, "/data/sentinel/ha/config.json")


class EnvironmentTests(SynchronousTestCase):
    def test_every_option_has_its_variable(self):
        env = {
            "SENTINEL_DATA_DIR": "/srv/s",
            "SENTINEL_DNS_PORT": "5353",
            "SENTINEL_DNS_INTERFACE": "127.0.0.1, ::1",
            "SENTINEL_HTTP_PORT": "8081",
            "SENTINEL_HTTP_INTERFACE": "127.0.0.1",
            "SENTINEL_DATABASE": "postgresql://root@127.0.0.1:5432/s",
            "SENTINEL_UPSTREAMS": "127.0.0.1:5300, tcp://127.0.0.2",
            "CLUSTER_ROLE_FILE": "/run/role",
            "SENTINEL_DEBUG": "yes",
        }
        c = config(env=env)
        self.assertEqual(c.data_dir, "/srv/s")
        self.assertEqual(c.dns_port, 5353)
        self.assertEqual(c.dns_interfaces, ("127.0.0.1", "::1"))
        self.assertEqual(c.http_port, 8081)
        self.assertEqual(c.http_interface, "127.0.0.1")
        self.assertEqual(c.database, "postgresql://root@127.0.0.1:5432/s")
        self.assertEqual(c.upstreams, ("127.0.0.1:5300", "tcp://127.0.0.2"))
        self.assertEqual(c.role_file, "/run/role")
        self.assertTrue(c.debug)

    def test_options_win_over_environment(self):
        c = config(["--dns-port", "1053", "--upstream", "10.0.0.1", "--upstream", "10.0.0.2"],
                   env={"SENTINEL_DNS_PORT": "5353", "SENTINEL_UPSTREAMS": "10.9.9.9"})
        self.assertEqual(c.dns_port, 1053)
        self.assertEqual(c.upstreams, ("10.0.0.1", "10.0.0.2"))

    def test_boolean_words(self):
        for word in ("true", "TRUE", "1", "yes", "On"):
            self.assertTrue(parse_bool(word), word)
            self.assertTrue(config(env={"SENTINEL_DEBUG": word}).debug)
        for word in ("false", "False", "0", "no", "OFF"):
            self.assertFalse(parse_bool(word), word)
            self.assertFalse(config(env={"SENTINEL_DEBUG": word}).debug)

    def test_bad_boolean_names_the_variable(self):
        with self.assertRaises(SystemExit) as e:
            config(env={"SENTINEL_DEBUG": "maybe"})
        self.assertEqual(e.exception.code, 2)
        with self.assertRaises(ConfigError) as e:
            build_config({}, {"SENTINEL_DEBUG": "maybe"})
        self.assertIn("SENTINEL_DEBUG", str(e.exception))
        self.assertIn("maybe", str(e.exception))


class InvalidValueTests(SynchronousTestCase):
    def error(self, cli=None, env=None):
        with self.assertRaises(ConfigError) as e:
            build_config(cli or {}, env or {})
        message = str(e.exception)
        self.assertNotIn("\n", message)
        return message

    def test_bad_port(self):
        for bad in ("0", "65536", "abc", "-1", ""):
            self.assertIn("--dns-port", self.error({"dns-port": bad}))
        self.assertIn("SENTINEL_HTTP_PORT", self.error(env={"SENTINEL_HTTP_PORT": "x"}))

    def test_bad_address(self):
        self.assertIn("--dns-interface", self.error({"dns-interface": "192.168.1"}))
        self.assertIn("--http-interface", self.error({"http-interface": "localhost"}))

    def test_bad_database(self):
        self.assertIn("--database", self.error({"database": "mysql://x"}))

    def test_bad_upstream(self):
        message = self.error({"upstream": ["8.8.8"]})
        self.assertIn("--upstream", message)
        self.assertIn("SENTINEL_UPSTREAMS", self.error(env={"SENTINEL_UPSTREAMS": " , "}))


class UpstreamSpecTests(SynchronousTestCase):
    def test_forms(self):
        u = parse_upstream("9.9.9.9")
        self.assertEqual((u.scheme, u.host, u.port), ("udp", "9.9.9.9", 53))
        u = parse_upstream("127.0.0.1:5300")
        self.assertEqual((u.scheme, u.host, u.port), ("udp", "127.0.0.1", 5300))
        u = parse_upstream("[2620:fe::fe]:5353")
        self.assertEqual((u.host, u.port), ("2620:fe::fe", 5353))
        u = parse_upstream("2620:fe::fe")
        self.assertEqual((u.host, u.port), ("2620:fe::fe", 53))
        u = parse_upstream("tcp://127.0.0.1")
        self.assertEqual((u.scheme, u.port), ("tcp", 53))
        u = parse_upstream("tls://dns.quad9.net#9.9.9.9")
        self.assertEqual((u.scheme, u.host, u.port, u.server_name), ("tls", "9.9.9.9", 853, "dns.quad9.net"))
        u = parse_upstream("tls://1.1.1.1")
        self.assertEqual((u.host, u.server_name), ("1.1.1.1", ""))
        u = parse_upstream("https://dns.example/dns-query#192.0.2.1")
        self.assertEqual((u.scheme, u.host, u.port, u.path), ("https", "192.0.2.1", 443, "/dns-query"))
        self.assertEqual(u.url, "https://dns.example/dns-query")

    def test_rejects(self):
        for bad in ("", "ftp://1.2.3.4", "tls://dns.quad9.net", "1.2.3.4:99999",
                    "udp://1.2.3.4#5.6.7.8", "[::1", "https://#1.2.3.4", "example.com"):
            self.assertRaises(UpstreamSpecError, parse_upstream, bad)
