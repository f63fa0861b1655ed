"""Request/response signing: what a follower and a leader rely on."""

from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import signing
from sentinel.cluster.signing import ClusterKeys, SignatureError

SECRET = b"k" * 32
NODE = "00112233aabbccdd"
PATH = "/api/cluster/sync/changes?since=3&history=abc&wait=5"


class RequestSigningTests(SynchronousTestCase):
    def setUp(self):
        self.keys = ClusterKeys.from_secret(SECRET)

    def sign(self, **kw):
        args = dict(method="GET", path_qs=PATH, body=b"", now=1000.0)
        args.update(kw)
        return signing.sign_request(self.keys, NODE, args["method"], args["path_qs"],
                                    args["body"], args["now"])

    def verify(self, headers, method="GET", path=PATH, body=b"", now=1000.0, keys=None):
        return signing.verify_request(keys or self.keys, headers, method, path, body, now)

    def assertRejected(self, code, *args, **kw):
        e = self.assertRaises(SignatureError, self.verify, *args, **kw)
        self.assertEqual(e.code, code)
        return e

    def test_valid_request_accepted(self):
        signed = self.verify(self.sign())
        self.assertEqual(signed.node_id, NODE)
        self.assertEqual(len(signed.nonce), 32)
        self.assertEqual(signed.timestamp, 1000)

    def test_every_signed_part_is_covered(self):
        headers = self.sign(method="POST", body=b'{"a":1}')
        self.verify(headers, method="POST", body=b'{"a":1}')
        self.assertRejected("BAD_SIGNATURE", headers, method="PUT", body=b'{"a":1}')
        self.assertRejected("BAD_SIGNATURE", headers, method="POST", body=b'{"a":2}')
        self.assertRejected("BAD_SIGNATURE", headers, method="POST", body=b'{"a":1}',
                            path=PATH.replace("since=3", "since=0"))
        for name in (signing.H_NONCE, signing.H_NODE, signing.H_TIMESTAMP):
            tampered = dict(headers)
            value = tampered[name]
            tampered[name] = value[:-1] + ("0" if value[-1] != "0" else "1")
            self.assertRejected("BAD_SIGNATURE", tampered, method="POST", body=b'{"a":1}')

    def test_other_secret_rejected(self):
        other = ClusterKeys.from_secret(b"x" * 32)
        e = self.assertRejected("BAD_SIGNATURE", self.sign(), keys=other)
        self.assertIn("cluster secret", e.message)

    def test_skew_window(self):
        headers = self.sign(now=1000.0)
        self.verify(headers, now=1060.0)
        self.verify(headers, now=940.0)
        self.assertRejected("EXPIRED", headers, now=1061.0)
        self.assertRejected("EXPIRED", headers, now=938.9)

    def test_unsigned_and_malformed(self):
        self.assertRejected("UNSIGNED", {})
        headers = self.sign()
        headers[signing.H_TIMESTAMP] = "12e3"
        self.assertRejected("BAD_SIGNATURE", headers)
        headers = self.sign()
        headers[signing.H_NONCE] = "../../etc"
        self.assertRejected("BAD_SIGNATURE", headers)

    def test_only_api_paths_signable(self):
        self.assertRaises(ValueError, self.sign, path_qs="http://evil/api/x")
        self.assertRaises(ValueError, self.sign, path_qs="/api/x\nInjected: 1")

    def test_nonces_differ(self):
        self.assertNotEqual(self.sign()[signing.H_NONCE], self.sign()[signing.H_NONCE])

    def test_keys_never_printed(self):
        self.assertNotIn(repr(SECRET), repr(self.keys))
        self.assertEqual(repr(self.keys), "<ClusterKeys>")
        self.assertNotEqual(self.keys.mac, self.keys.wire)


class ResponseSigningTests(SynchronousTestCase):
    def setUp(self):
        self.keys = ClusterKeys.from_secret(SECRET)
        self.nonce = "ab" * 16

    def test_round_trip(self):
        headers = signing.sign_response(self.keys, self.nonce, 200, b"body", 500.0)
        signing.verify_response(self.keys, headers, self.nonce, 200, b"body", 530.0)

    def test_bound_to_request_status_and_body(self):
        headers = signing.sign_response(self.keys, self.nonce, 200, b"body", 500.0)
        for args in ((self.nonce, 200, b"bodY"), ("cd" * 16, 200, b"body"),
                     (self.nonce, 409, b"body")):
            e = self.assertRaises(SignatureError, signing.verify_response,
                                  self.keys, headers, *args, 500.0)
            self.assertEqual(e.code, "BAD_SIGNATURE")

    def test_stale_response_rejected(self):
        headers = signing.sign_response(self.keys, self.nonce, 200, b"body", 500.0)
        e = self.assertRaises(SignatureError, signing.verify_response,
                              self.keys, headers, self.nonce, 200, b"body", 561.0)
        self.assertEqual(e.code, "EXPIRED")

    def test_unsigned_response_rejected(self):
        e = self.assertRaises(SignatureError, signing.verify_response,
                              self.keys, {}, self.nonce, 200, b"body", 500.0)
        self.assertEqual(e.code, "UNSIGNED")
