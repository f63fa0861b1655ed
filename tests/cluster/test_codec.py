"""The sync payload: confidential, bound to its request, strictly validated."""

import base64
import json

import attr
from twisted.trial.unittest import SynchronousTestCase

from sentinel.cluster import codec
from sentinel.cluster.codec import Batch, CodecError, WireEntity
from sentinel.cluster.signing import ClusterKeys

KEY = ClusterKeys.from_secret(b"s" * 32).wire
NONCE = "12" * 16
LEADER = "aa" * 8
HISTORY = "bb" * 16


def batch(mode="changes", entities=(), blobs=(), revision=7, since=3):
    return Batch(mode, LEADER, HISTORY, revision, since, tuple(entities), tuple(blobs))


class CodecTests(SynchronousTestCase):
    def test_round_trip(self):
        b = batch(entities=[WireEntity("rule", "4", 5, {"pattern": "ads.example"}),
                            WireEntity("client", "2", 6, None),
                            WireEntity("secret", "smtp", 7, {"value": "hunter2"})],
                  blobs=["a" * 64])
        body = codec.encode(b, KEY, NONCE)
        self.assertEqual(codec.decode(body, KEY, NONCE), b)

    def test_key_marks_travel_sealed(self):
        b = attr.evolve(batch("full", since=0), marks={"blocklist": 3, "rule": 12})
        body = codec.encode(b, KEY, NONCE)
        self.assertEqual(codec.decode(body, KEY, NONCE).marks, {"blocklist": 3, "rule": 12})
        self.assertNotIn(b"blocklist", body)
        # From a leader that sends none (older version): nothing to reserve.
        inner = {"entities": [], "blobs": []}
        self.assertEqual(codec.decode(self.sealed_with(inner), KEY, NONCE).marks, {})

    def test_configuration_never_in_clear(self):
        b = batch(entities=[WireEntity("secret", "smtp", 7, {"value": "hunter2"}),
                            WireEntity("user", "admin", 7, {"hash": "$argon2id$xyz"})])
        body = codec.encode(b, KEY, NONCE)
        for text in (b"hunter2", b"argon2id", b"smtp", b"admin"):
            self.assertNotIn(text, body)

    def test_unchanged_is_tiny(self):
        body = codec.encode(batch("unchanged", since=7), KEY, NONCE)
        self.assertLess(len(body), 160)
        self.assertEqual(codec.decode(body, KEY, NONCE).mode, "unchanged")

    def test_bound_to_request_nonce(self):
        body = codec.encode(batch(entities=[WireEntity("rule", "1", 2, {})]), KEY, NONCE)
        self.assertRaises(CodecError, codec.decode, body, KEY, "34" * 16)

    def test_envelope_fields_authenticated(self):
        body = codec.encode(batch(entities=[WireEntity("rule", "1", 2, {})]), KEY, NONCE)
        for field, value in (("revision", 99), ("since", 1), ("mode", "full"),
                             ("history", "cc" * 16), ("leader", "dd" * 8)):
            env = json.loads(body)
            env[field] = value
            self.assertRaises(CodecError, codec.decode, json.dumps(env).encode(), KEY, NONCE)

    def test_other_key_rejected(self):
        body = codec.encode(batch(entities=[WireEntity("rule", "1", 2, {})]), KEY, NONCE)
        other = ClusterKeys.from_secret(b"t" * 32).wire
        self.assertRaises(CodecError, codec.decode, body, other, NONCE)

    def sealed_with(self, inner, mode="changes"):
        """A correctly encrypted payload around arbitrary inner JSON."""
        import os

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        b = batch(mode)
        n = os.urandom(12)
        raw = json.dumps(inner).encode()
        sealed = n + AESGCM(KEY).encrypt(n, raw, codec._aad(NONCE, b))
        env = {"v": 1, "mode": mode, "leader": LEADER, "history": HISTORY,
               "revision": b.revision, "since": b.since,
               "sealed": base64.b64encode(sealed).decode()}
        return json.dumps(env).encode()

    def test_bad_inner_content_rejected(self):
        bad = [
            {"entities": "x", "blobs": []},
            {"entities": [["Rule", "1", 2, {}]], "blobs": []},
            {"entities": [["rule", "", 2, {}]], "blobs": []},
            {"entities": [["rule", "1", "2", {}]], "blobs": []},
            {"entities": [["rule", "1", 0, {}]], "blobs": []},
            {"entities": [["rule", "1", 2]], "blobs": []},
            {"entities": [["rule", "1", 2, {}], ["rule", "1", 3, {}]], "blobs": []},
            {"entities": [["secret", "x", 2, {"sealed": "abc"}]], "blobs": []},
            {"entities": [], "blobs": ["../etc/passwd"]},
            {"entities": [], "blobs": ["A" * 64]},
            {"entities": [], "blobs": [], "marks": [["rule", 3]]},
            {"entities": [], "blobs": [], "marks": {"rule": "3"}},
            {"entities": [], "blobs": [], "marks": {"rule": 0}},
            {"entities": [], "blobs": [], "marks": {"rule": 10 ** 18}},
            {"entities": [], "blobs": [], "marks": {"rule": True}},
            {"entities": [], "blobs": [], "marks": {"Rule!": 3}},
        ]
        for inner in bad:
            self.assertRaises(CodecError, codec.decode, self.sealed_with(inner), KEY, NONCE)
        # Deletions only make sense in incremental changes.
        self.assertRaises(CodecError, codec.decode,
                          self.sealed_with({"entities": [["rule", "1", 2, None]], "blobs": []},
                                           mode="full"), KEY, NONCE)

    def test_bad_envelopes_rejected(self):
        good = json.loads(codec.encode(batch("unchanged", since=7), KEY, NONCE))
        for change in ({"v": 2}, {"mode": "everything"}, {"revision": -1},
                       {"revision": True}, {"since": 8}, {"leader": "x"}, {"history": 5}):
            env = dict(good, **change)
            self.assertRaises(CodecError, codec.decode, json.dumps(env).encode(), KEY, NONCE)
        for raw in (b"", b"\xff\xfe", b"[]", b"null", b'{"v":1,"mode":"changes"}'):
            self.assertRaises(CodecError, codec.decode, raw, KEY, NONCE)

    def test_a_newer_leader_is_named_as_such(self):
        """Version skew (the leader upgraded first): the error says what to do;
        nothing is applied."""
        env = dict(json.loads(codec.encode(batch("unchanged", since=7), KEY, NONCE)), v=2)
        with self.assertRaises(CodecError) as caught:
            codec.decode(json.dumps(env).encode(), KEY, NONCE)
        self.assertEqual(str(caught.exception),
                         "the leader runs a newer Sentinel (sync payload version 2; this "
                         "node reads version 1): upgrade this node")
        env["v"] = "1"
        with self.assertRaises(CodecError) as caught:
            codec.decode(json.dumps(env).encode(), KEY, NONCE)
        self.assertEqual(str(caught.exception), "unknown sync payload version '1'")

    def test_blob_refs_only_known_shas(self):
        a, b = "a" * 64, "b" * 64
        data = {"source": {"sha256": a}, "history": [b, "c" * 64], "name": "x"}
        self.assertEqual(codec.blob_refs(data, {a, b}), {a, b})
        self.assertEqual(codec.blob_refs(data, {a}), {a})
        self.assertEqual(codec.blob_refs(None, {a}), set())

    def test_history_ids_random(self):
        self.assertNotEqual(codec.new_history_id(), codec.new_history_id())
        self.assertTrue(attr.has(Batch))
