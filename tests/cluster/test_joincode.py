"""Join codes and leader URLs."""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import joincode
from sentinel.cluster.joincode import JoinCodeError

SECRET = bytes(range(32))


class JoinCodeTests(SynchronousTestCase):
    def code(self, url="http://192.168.1.53:8080", expires=2000):
        return joincode.make(url, SECRET, expires)

    def assertCode(self, code, text, now=1000):
        e = self.assertRaises(JoinCodeError, joincode.parse, text, now)
        self.assertEqual(e.code, code)
        return e

    def test_round_trip(self):
        parsed = joincode.parse(self.code(), 1000)
        self.assertEqual(parsed.leader_url, "http://192.168.1.53:8080")
        self.assertEqual(parsed.secret, SECRET)
        self.assertEqual(parsed.expires, 2000)

    def test_secret_not_in_repr(self):
        self.assertNotIn(repr(SECRET), repr(joincode.parse(self.code(), 1000)))

    def test_copy_paste_whitespace_tolerated(self):
        code = self.code()
        wrapped = "  " + code[:20] + "\n" + code[20:] + "\n"
        self.assertEqual(joincode.parse(wrapped, 1000).secret, SECRET)

    def test_expired(self):
        self.assertCode("JOIN_CODE_EXPIRED", self.code(expires=999))

    def test_garbage_and_typos(self):
        code = self.code()
        for bad in ("", "hello", "SJ1.abc", code[:-1], code[:40] + "x" + code[41:],
                    code.replace("SJ1", "SJ2"), None, 42, "é" * 20, "x" * 5000,
                    "SJ1.é.abc"):
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
