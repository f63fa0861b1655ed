"""Join codes and leader URLs."""

import re
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import joincode
from sentinel.cluster.joincode import JoinCodeError

SECRET = bytes(range(32))  # the join key
CODE_ID = "0123456789abcdef" * 2


class JoinCodeTests(SynchronousTestCase):
    def code(self, url="http://192.168.1.53:8080", expires=2000):
        return joincode.make(url, CODE_ID, SECRET, expires)

    def assertCode(self, code, text, now=1000):
        e = self.assertRaises(JoinCodeError, joincode.parse, text, now)
        self.assertEqual(e.code, code)
        return e

    def test_round_trip(self):
        parsed = joincode.parse(self.code(), 1000)
        self.assertEqual(parsed.leader_url, "http://192.168.1.53:8080")
        self.assertEqual(parsed.key, SECRET)
        self.assertEqual(parsed.code_id, CODE_ID)
        self.assertEqual(parsed.expires, 2000)

    def test_secret_not_in_repr(self):
        self.assertNotIn(repr(SECRET), repr(joincode.parse(self.code(), 1000)))

    def test_copy_paste_whitespace_tolerated(self):
        code = self.code()
        wrapped = "  " + code[:20] + "\n" + code[20:] + "\n"
        self.assertEqual(joincode.parse(wrapped, 1000).key, SECRET)

    def test_expired(self):
        self.assertCode("JOIN_CODE_EXPIRED", self.code(expires=999))

    def test_garbage_and_typos(self):
        code = self.code()
        for bad in ("", "hello", "SJ2.abc", code[:-1], code[:40] + "x" + code[41:],
                    code.replace("SJ2", "SJ3"), code.replace("SJ2", "SJ1"), None, 42,
                    "é" * 20, "x" * 5000, "SJ2.é.abc",
                    joincode.make("http://x", "nothex", SECRET, 2000)):
            self.assertCode("INVALID_JOIN_CODE", bad)

    def test_bad_url_inside(self):
        self.assertCode("INVALID_LEADER_URL", self.code(url="ftp://x"))


class LeaderUrlTests(SynchronousTestCase):
    def test_normalized(self):
        self.assertEqual(joincode.normalize_leader_url(" http://10.0.0.5:8080/ "),
                         "http://10.0.0.5:8080")
        self.assertEqual(joincode.normalize_leader_url("https://dns.lan"), "https://dns.lan")

    def test_rejected(self):
        for bad in ("", "10.0.0.5", "ftp://x", "http://", "http://u:p@x", "http://x/?a=1",
                    "http://x/#f", "http://x:99999", "http://a b", None):
            e = self.assertRaises(JoinCodeError, joincode.normalize_leader_url, bad)
            self.assertEqual(e.code, "INVALID_LEADER_URL")

    def test_warnings(self):
        w = joincode.url_warnings
        self.assertIn("loopback", w("http://127.0.0.1:8080")[0])
        self.assertIn("loopback", w("http://localhost:8080")[0])
        self.assertIn("loopback", w("http://[::1]:8080")[0])
        self.assertEqual(w("http://10.0.0.53:8080", ["10.0.0.5"], vip="10.0.0.53"), [])
        self.assertIn("own address", w("http://10.0.0.5:8080", ["10.0.0.5"], vip="10.0.0.53")[0])
        self.assertIn("not the configured VIP", w("http://10.0.0.9:8080", [], vip="10.0.0.53")[0])
        self.assertIn("No VIP", w("http://10.0.0.9:8080", [], vip=None)[0])


class LeaderUrlGrammarTests(SynchronousTestCase):
    """The API schema's pattern and the code accept exactly the same URLs."""

    def accepted(self, text):
        try:
            joincode.normalize_leader_url(text)
            return True
        except JoinCodeError:
            return False

    def schema_valid(self, text):
        return len(text) <= joincode.MAX_URL and bool(
            re.search(joincode.LEADER_URL_PATTERN, text))

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.from_regex(joincode.LEADER_URL_PATTERN))
    def test_every_url_matching_the_schema_is_accepted(self, text):
        if len(text) > joincode.MAX_URL:
            return
        url = joincode.normalize_leader_url(text)
        parts = urlsplit(url)  # parses: host and port are valid
        self.assertIn(parts.scheme, ("http", "https"))
        self.assertTrue(parts.hostname)
        parts.port

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.one_of(
        st.text(max_size=40),
        st.builds(lambda s, h, p, t: f"{s}://{h}{p}{t}",
                  st.sampled_from(["http", "HTTPS", "ftp", "http:", ""]),
                  st.text(alphabet="0123456789abcdef:.[]@-_~% ", max_size=30),
                  st.sampled_from(["", ":", ":80", ":65535", ":65536", ":0", ":x"]),
                  st.sampled_from(["", "/", "//", "/a", "?q", "#f", " ", "\n"]))))
    def test_schema_and_code_agree(self, text):
        self.assertEqual(self.schema_valid(text), self.accepted(text), repr(text))

    def test_ipv6_literals(self):
        for host in ("::", "::1", "1::", "fe80::1", "1:2:3:4:5:6:7:8", "::1:2:3:4:5:6:7",
                     "1:2:3:4:5:6:7::", "::ffff:198.18.0.1", "64:ff9b::198.18.0.1"):
            self.assertEqual(self.accepted(f"http://[{host}]:8080"), True, host)
            self.assertTrue(self.schema_valid(f"http://[{host}]:8080"), host)
        for host in ("::::", "1.2.3.4", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.04", "fe80::1%eth0",
                     "v1.x", "12345::"):
            self.assertEqual(self.accepted(f"http://[{host}]:8080"), False, host)
            self.assertFalse(self.schema_valid(f"http://[{host}]:8080"), host)
