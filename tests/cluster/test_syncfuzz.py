"""
Seeded (deterministic) fuzzing of what a follower does with its leader's
answer, for answers signed and sealed with the real cluster keys — what a
buggy or newer leader, or anything holding the secret, can send:

- the codec accepts a payload or raises CodecError, nothing else; what it
  accepts can be stored (UTF-8 text, finite numbers, 64-bit integers, keys
  without control characters, nesting JSON encoding can handle);
- through the real follower (real stores, a real policy engine on the
  follower's store): every answer is applied whole or not at all (SyncError
  with a code, the store unchanged), DNS keeps deciding with a policy, and
  entities with bad data are applied but skipped by their consumers, as
  docs/CLUSTER.md ("What is synced") says; at the end the follower goes
  back to the real leader (resync) and converges.

HTTP-level oddities are tests/cluster/test_hostile.py.
"""

import base64
import hashlib
import json
import os
import random

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from sentinel.cluster import codec, signing
from sentinel.cluster.status import SyncError
from sentinel.dns.decision import BLOCK, PASS, PolicySource
from sentinel.dns.settings import SettingsError, from_data
from sentinel.filtering.engine import PolicyEngine
from sentinel.store.entities import encode as canonical
from tests.cluster.pair import SyncTestCase
from tests.cluster.support import live
from tests.filtering.helpers import list_blob, wire
from tests.filtering.storehelp import inline

KEY = bytes(range(32))
NONCE = "0f" * 16
LEADER = "fedcba9876543210"
HISTORY = "ab" * 8
KINDS = ("rule", "client", "blocklist", "rewrite", "setting", "user", "session", "secret",
         "api_token", "frobnicator")


def seal(env, inner_bytes, key=KEY, nonce=NONCE):
    """The body a leader holding ``key`` sends: ``env`` with ``inner_bytes`` sealed."""
    env = dict(env)
    try:
        head = codec.Batch(env["mode"], env["leader"], env["history"], env["revision"],
                           env["since"])
        aad = codec._aad(nonce, head)
    except (KeyError, TypeError, UnicodeEncodeError):
        aad = b"x"  # an envelope no AAD can be made of: decode refuses it first
    n = os.urandom(12)
    env["sealed"] = base64.b64encode(n + AESGCM(key).encrypt(n, inner_bytes, aad)).decode()
    return _raw(env)


def _raw(value):
    return json.dumps(value).encode("ascii")  # "\ud800" as a JSON escape, as a leader sends


class Hostile:
    """Seeded hostile JSON values, entities and payloads."""

    STRINGS = ["", "x", "kept.example", "\x00", "a\x00b", "\ud800", "\udfff", "\n", "\x7f",
               "é", "\u202e", "[[[", "*.", "..", "a" * 600, "0", "-1", "1e400", "NaN",
               "ab" * 32, "<script>", "'; DROP TABLE config; --"]
    NUMBERS = [0, 1, -1, 2**31, 2**63 - 1, 2**63, -(2**63), 10**18, 10**30, 0.5, -0.0,
               1e308, True, False]

    def __init__(self, seed):
        self.r = random.Random(seed)

    def value(self, depth=0):
        r = self.r
        pick = r.randrange(9 if depth < 4 else 4)
        if pick == 0:
            return None
        if pick == 1:
            return r.choice(self.STRINGS)
        if pick == 2:
            return r.choice(self.NUMBERS)
        if pick == 3:
            return "".join(chr(r.randrange(0x20, 0x3000)) for _ in range(r.randrange(12)))
        if pick in (4, 5):
            return {r.choice(self.STRINGS + ["pattern", "action", "name", "addresses",
                                             "mode", "global", "content", "sha256"]):
                    self.value(depth + 1) for _ in range(r.randrange(4))}
        if pick == 6:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        if pick == 7:
            nested = inner = []
            for _ in range(r.choice([10, 40, 200, 600])):
                inner.append([])
                inner = inner[0]
            return nested
        return r.choice([{"pattern": "new.example", "action": "block"},
                         {"pattern": "[[[", "action": "block"},
                         {"pattern": 5, "action": []},
                         {"block_mode": "teapot", "ttl": 10**12},
                         {"paused": "yes", "until": "tomorrow"}])

    def key(self):
        r = self.r
        return r.choice([str(r.randrange(100, 10**6)), r.choice(self.STRINGS), "dns", "ui",
                         "filtering", "protection", "cluster.secret", "ha", "listen",
                         "999999999999999999", "1" * 19, "007"])

    def entity(self, mode):
        r = self.r
        if r.random() < 0.1:
            return self.value()  # not even an entity
        item = [r.choice(KINDS) if r.random() < 0.9 else self.value(), self.key(),
                r.choice([1, 2, 10**9]) if r.random() < 0.9 else self.value(),
                None if mode == "changes" and r.random() < 0.2 else self.value()]
        if r.random() < 0.1:
            item = item[:r.randrange(4)] + [self.value()] * r.randrange(3)
        return item

    def inner(self, mode, keep=()):
        r = self.r
        entities = [self.entity(mode) for _ in range(r.randrange(6))]
        entities += [list(e) for e in keep]
        r.shuffle(entities)
        if r.random() < 0.1 and entities:
            entities.append(entities[0])  # the same entity twice
        out = {"entities": entities, "blobs": [], "marks": {}}
        if r.random() < 0.2:
            out["blobs"] = [r.choice(["ab" * 32, "zz", 5, None])]
        if r.random() < 0.2:
            out["marks"] = {r.choice(KINDS): r.choice(self.NUMBERS)}
        if r.random() < 0.15:
            out[r.choice(["entities", "blobs", "marks"])] = self.value()
        return _raw(out)

    def envelope(self, mode, leader, history, since):
        r = self.r
        env = {"v": 1, "mode": mode, "leader": leader, "history": history,
               "revision": since + r.choice([1, 1, 1, 5]), "since": since}
        if mode == "full":
            env["since"] = 0
        if r.random() < 0.25:
            env[r.choice(list(env))] = self.value()
        if r.random() < 0.05:
            env["revision"] = since - 1  # going back
        return env


class CodecFuzzTests(SynchronousTestCase):
    def test_strict_json_as_the_leaders_api_accepts_it(self):
        """What the leader's API refuses (sentinel/api/inputs.py) is refused
        here too: it cannot come from a correct leader, and some of it
        cannot be stored (a lone surrogate is no UTF-8; PostgreSQL holds no
        NUL in a key) or encoded (nesting past Python's recursion limit)."""
        env = {"v": 1, "mode": "changes", "leader": LEADER, "history": HISTORY, "revision": 5,
               "since": 4}

        def inner(*entities, **extra):
            return dict({"entities": [list(e) for e in entities], "blobs": []}, **extra)

        cases = [
            ("NaN", seal(env, b'{"entities": [["rule", "1", 1, {"a": NaN}]], "blobs": []}')),
            ("Infinity", seal(env, b'{"entities": [["rule", "1", 1, Infinity]], "blobs": []}')),
            ("1e400", seal(env, b'{"entities": [["rule", "1", 1, [1e400]]], "blobs": []}')),
            ("2**64", seal(env, _raw(inner(("rule", "1", 1, {"n": 2**64}))))),
            ("revision 2**64", seal(dict(env, revision=2**64), _raw(inner()))),
            ("lone surrogate", seal(env, _raw(inner(("rule", "1", 1, {"p": "\ud800"}))))),
            ("surrogate key", seal(env, _raw(inner(("user", "a\udc00", 1, {}))))),
            ("NUL in key", seal(env, _raw(inner(("user", "a\x00b", 1, {}))))),
            ("newline in key", seal(env, _raw(inner(("session", "a\nb", 1, {}))))),
            ("deep data", seal(env, b'{"entities": [["rule", "1", 1, ' + b"[" * 500
                               + b"]" * 500 + b']], "blobs": []}')),
            ("deeper than parsable", seal(env, b'{"entities": [["rule", "1", 1, '
                                          + b"[" * 100000 + b"]" * 100000 + b"]], \"blobs\": []}")),
            ("deep envelope", b"[" * 100000 + b"]" * 100000),
            ("huge int envelope", b'{"v": 1, "revision": ' + b"9" * 5000 + b"}"),
        ]
        for name, body in cases:
            with self.assertRaises(codec.CodecError, msg=name):
                codec.decode(body, KEY, NONCE)
        # What a correct leader sends still passes: text, unicode, nesting a
        # configuration has, NUL inside data (stored escaped in the JSON).
        ok = codec.decode(seal(env, _raw(inner(
            ("rule", "1", 1, {"pattern": "é.example", "comment": "a\x00b\u202e",
                              "n": 2**63 - 1, "f": 1e308, "deep": [[[[[[[[1]]]]]]]]}),
            ("user", "jürgen", 1, {"name": "Jürgen"})))), KEY, NONCE)
        self.assertEqual([e.key for e in ok.entities], ["1", "jürgen"])

    def test_seeded_payloads_decode_or_fail_cleanly(self):
        """3000 seeded hostile payloads: a Batch or CodecError, nothing
        else; whatever is accepted can be encoded and stored."""
        fuzz = Hostile(20261127)
        outcomes = {"accepted": 0, "refused": 0}
        for i in range(3000):
            mode = fuzz.r.choice(["changes", "full", "unchanged"])
            env = fuzz.envelope(mode, LEADER, HISTORY, 7)
            body = seal(env, fuzz.inner(mode)) if mode != "unchanged" else _raw(env)
            if fuzz.r.random() < 0.05:
                body = body[:fuzz.r.randrange(len(body))]  # truncated
            try:
                batch = codec.decode(body, KEY, NONCE)
            except codec.CodecError as e:
                outcomes["refused"] += 1
                self.assertTrue(str(e), i)
                # The status page and the log show it: short, one line.
                self.assertLessEqual(len(str(e)), 200, i)
                self.assertNotIn("\n", str(e), i)
                continue
            outcomes["accepted"] += 1
            for e in batch.entities:
                canonical(e.data).encode("utf-8")  # storable
                self.assertNotRegex(e.key, r"[\x00-\x1f\x7f]", i)
                self.assertIsInstance(e.revision, int)
            for top in batch.marks.values():
                self.assertTrue(0 < top < 10**18, i)
            self.assertEqual(len({(e.kind, e.key) for e in batch.entities}),
                             len(batch.entities), i)
        # The generator reaches both sides.
        self.assertGreater(outcomes["accepted"], 300)
        self.assertGreater(outcomes["refused"], 300)


class SignedLeader(Resource):
    """
    Answers sync requests with ``answer(nonce)`` (a body) and blob requests
    from ``blobs`` (sha -> bytes, whatever they hold), all properly signed.
    """

    isLeaf = True

    def __init__(self, keys, clock, answer, blobs=None):
        super().__init__()
        self._keys, self._clock, self.answer = keys, clock, answer
        self.blobs = blobs or {}

    def render(self, request):
        nonce = request.getHeader(signing.H_NONCE)
        path = request.path.decode()
        if path.startswith("/api/cluster/sync/blobs/"):
            body = self.blobs.get(path.rsplit("/", 1)[1], b"")
        else:
            body = self.answer(nonce)
        for name, value in signing.sign_response(self._keys, nonce, 200, body,
                                                 self._clock.seconds()).items():
            request.setHeader(name, value)
        return body


class FollowerFuzzTests(SyncTestCase):
    async def setUp(self):
        await super().setUp()
        await self.join()
        self.kept = await self.leader.store.create(
            "rule", {"pattern": "kept.example", "action": "block"})
        await self.sync()
        self.keys = self.follower.state.keys
        self.source = PolicySource()
        self.engine = PolicyEngine(self.follower.store, self.clock, self.source, run=inline)
        self.engine.startService()
        self.addCleanup(self.engine.stopService)
        await self.engine.settled()
        self.assertEqual(self.decide("kept.example"), BLOCK)

    def decide(self, name):
        return self.source.current.decide("192.168.1.50", wire(name), 1).action

    async def held(self):
        self.follower.client._marker_epoch = None  # read the stored position again
        return await self.follower.client._held_marker()

    def serve(self, answer, blobs=None):
        self.follower.leader_http = self.pump.add(StubTreq(
            SignedLeader(self.keys, self.clock, answer, blobs)))

    async def test_bad_entity_data_is_applied_and_skipped_by_consumers(self):
        """'Entities are applied as the leader stores them, not re-validated
        [...] their consumers skip what they cannot use' (docs/CLUSTER.md):
        the valid ones take effect, the invalid ones change nothing, DNS
        keeps deciding."""
        held = await self.held()
        good_sha, good_blob = list_blob("listed.example\n")
        junk = b"\x00\xffthis is not a blocklist blob"
        junk_sha = hashlib.sha256(junk).hexdigest()
        entities = [
            ["rule", "50", 1, {"pattern": "[[[bad", "action": "block"}],
            ["rule", "51", 1, {"pattern": 5, "action": ["block"]}],
            ["rule", "52", 1, "not an object"],
            ["rule", "53", 1, {"pattern": "new.example", "action": "block"}],
            ["setting", "dns", 1, {"block_mode": "teapot", "block_ttl": 10**12}],
            ["setting", "filtering", 1, {"time_zone": "Mars/Olympus", "refresh_hours": -5}],
            ["setting", "protection", 1, {"paused": "yes", "until": "tomorrow"}],
            ["blocklist", "60", 1, {"name": "junk", "url": "http://198.18.0.9/l",
                                    "content": {"sha256": junk_sha}, "global": True}],
            ["blocklist", "61", 1, {"name": "good", "url": "http://198.18.0.9/g",
                                    "content": {"sha256": good_sha}, "global": True}],
            ["frobnicator", "1", 1, {"from": "a newer version"}],
        ]
        inner = _raw({"entities": entities, "blobs": sorted([junk_sha, good_sha])})
        env = {"v": 1, "mode": "changes", "leader": held["leader"], "history": held["history"],
               "revision": held["revision"] + 1, "since": held["revision"]}
        self.serve(lambda n: seal(env, inner, self.keys.wire, n),
                   {junk_sha: junk, good_sha: good_blob})
        applied = await self.sync()
        self.assertEqual(applied.counts["rule"]["put"], 4)
        await self.engine.settled()
        self.assertEqual([self.decide(n) for n in
                          ("kept.example", "new.example", "listed.example", "other.example")],
                         [BLOCK, BLOCK, BLOCK, PASS])
        with self.assertRaises(SettingsError):  # the DNS runtime keeps its settings
            from_data((await self.follower.store.get("setting", "dns")).data)

    async def test_blob_not_matching_its_sha_applies_nothing(self):
        held = await self.held()
        real_sha, _ = list_blob("listed.example\n")
        inner = _raw({"entities": [
            ["rule", "53", 1, {"pattern": "new.example", "action": "block"}],
            ["blocklist", "61", 1, {"name": "l", "url": "http://198.18.0.9/l",
                                    "content": {"sha256": real_sha}, "global": True}]],
            "blobs": [real_sha]})
        env = {"v": 1, "mode": "changes", "leader": held["leader"], "history": held["history"],
               "revision": held["revision"] + 1, "since": held["revision"]}
        self.serve(lambda n: seal(env, inner, self.keys.wire, n),
                   {real_sha: b"something else"})
        before = await self.follower.store.revision()
        e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
        self.assertEqual(e.code, "BAD_BLOB")
        self.assertEqual(await self.follower.store.revision(), before)
        self.assertEqual(self.decide("new.example"), PASS)

    async def test_seeded_hostile_answers_apply_whole_or_not_at_all(self):
        fuzz = Hostile(1127)
        codes = {}
        kept = ["rule", self.kept.key, 1, self.kept.data]
        for i in range(40):
            held = await self.held()
            mode = fuzz.r.choice(["changes", "changes", "full", "unchanged"])
            env = fuzz.envelope(mode, held["leader"], held["history"], held["revision"])
            inner = fuzz.inner(mode, keep=[kept] if mode == "full" else ())
            self.serve(lambda n: seal(env, inner, self.keys.wire, n) if mode != "unchanged"
                       else _raw(env))
            before = await live(self.follower)
            revision = await self.follower.store.revision()
            try:
                await self.sync()
            except SyncError as e:
                codes[e.code] = codes.get(e.code, 0) + 1
                self.assertEqual(await self.follower.store.revision(), revision, (i, e))
                self.assertEqual(await live(self.follower), before, i)
            else:
                codes["applied"] = codes.get("applied", 0) + 1
            await self.engine.settled()
            self.assertIsNotNone(self.source.current, i)
            self.assertEqual(self.decide("kept.example"), BLOCK, i)  # DNS keeps its policy
        self.assertLessEqual(set(codes), {"applied", "BAD_PAYLOAD", "LEADER_BEHIND",
                                          "OUT_OF_ORDER", "SELF"}, codes)
        self.assertGreater(codes.get("applied", 0), 3, codes)
        self.assertGreater(codes.get("BAD_PAYLOAD", 0), 10, codes)
        # The real leader again: the follower may have taken revisions the
        # leader never had (LEADER_BEHIND); a resync converges.
        self.follower.leader_http = self.to_leader
        await self.leader.store.create("rule", {"pattern": "later.example", "action": "block"})
        try:
            await self.sync()
        except SyncError as e:
            self.assertEqual(e.code, "LEADER_BEHIND")
            self.follower.client.force_next = True
            await self.sync()
        self.assertEqual(await live(self.follower), await live(self.leader))
        await self.engine.settled()
        self.assertEqual((self.decide("kept.example"), self.decide("later.example"),
                          self.decide("new.example")), (BLOCK, BLOCK, PASS))

    async def test_unstorable_content_is_a_bad_payload(self):
        """Content the leader's API never accepts, sent anyway: refused as a
        whole with BAD_PAYLOAD (not a store error or INTERNAL_ERROR retried
        forever, not stored to break a later read)."""
        cases = {
            "lone surrogate": [["rule", "70", 1, {"pattern": "\ud800", "action": "block"}]],
            "surrogate key": [["user", "a\udc00", 1, {"name": "x"}]],
            "NUL in key": [["user", "a\x00b", 1, {"name": "x"}]],
            "deep data": [["rule", "71", 1, json.loads("[" * 600 + "]" * 600)]],
        }
        for name, entities in cases.items():
            held = await self.held()
            env = {"v": 1, "mode": "changes", "leader": held["leader"],
                   "history": held["history"], "revision": held["revision"] + 1,
                   "since": held["revision"]}
            inner = _raw({"entities": entities + [
                ["rule", "72", 1, {"pattern": "new.example", "action": "block"}]], "blobs": []})
            self.serve(lambda n: seal(env, inner, self.keys.wire, n))
            before = await live(self.follower)
            e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
            self.assertEqual(e.code, "BAD_PAYLOAD", name)
            self.assertEqual(await live(self.follower), before, name)
            self.assertEqual(self.decide("new.example"), PASS)
        # Deep, but as deep as any configuration (UI preferences hold any
        # JSON): applied.
        held = await self.held()
        env = {"v": 1, "mode": "changes", "leader": held["leader"], "history": held["history"],
               "revision": held["revision"] + 1, "since": held["revision"]}
        deep = json.loads("[" * (codec.MAX_DEPTH - 1) + "]" * (codec.MAX_DEPTH - 1))
        inner = _raw({"entities": [["setting", "ui", 1, {"kept": deep}]], "blobs": []})
        self.serve(lambda n: seal(env, inner, self.keys.wire, n))
        await self.sync()
        self.assertEqual((await self.follower.store.get("setting", "ui")).data, {"kept": deep})
        for nan in (b"NaN", b"Infinity", b"1e400"):
            held = await self.held()
            env = {"v": 1, "mode": "changes", "leader": held["leader"],
                   "history": held["history"], "revision": held["revision"] + 1,
                   "since": held["revision"]}
            inner = b'{"entities": [["rule", "73", 1, {"pattern": "new.example", ' \
                    b'"action": "block", "n": ' + nan + b'}]], "blobs": []}'
            self.serve(lambda n: seal(env, inner, self.keys.wire, n))
            e = await self.assertFailure(ensureDeferred(self.sync()), SyncError)
            self.assertEqual(e.code, "BAD_PAYLOAD", nan)


class LeaderFuzzTests(SyncTestCase):
    """
    The leader's sync endpoints given hostile requests — from anyone (bad
    or missing signature headers) and from a member (signed, with bad
    queries and bodies): a 4xx with an error code, never a 500, never a
    change to the leader's configuration, and it goes on serving.
    """

    async def setUp(self):
        await super().setUp()
        await self.join()
        await self.leader.store.create("rule", {"pattern": "kept.example", "action": "block"})
        self.keys = self.follower.state.keys
        self.node = self.follower.state.node_id

    async def send(self, method, path, headers, body=b""):
        response = await self.to_leader.request(method, "http://leader" + path,
                                                headers=headers, data=body or None)
        raw = await response.content()
        return response.code, raw

    def signed(self, method, path, body=b"", **override):
        headers = signing.sign_request(self.keys, self.node, method, path, body,
                                       self.clock.seconds())
        headers["Content-Type"] = "application/json"
        headers.update(override)
        return {k: v for k, v in headers.items() if v is not None}

    async def test_seeded_hostile_requests(self):
        r = random.Random(5)
        history = self.leader.state.history
        before = await live(self.leader)
        revision = await self.leader.store.revision()
        paths = ["/api/cluster/sync/changes?since=0", "/api/cluster/sync/hello",
                 "/api/cluster/sync/join", "/api/cluster/sync/blobs/" + "ab" * 32]
        header_values = [None, "", " ", "0", "-1", "1e9", "9" * 13, "abc", "AB" * 16,
                         "g" * 32, "0" * 31, "0" * 64, "é", "\t1700000000", "1700000000 ",
                         "f" * 65, "ab" * 32]
        queries = ["since=-1", "since=1.5", "since=0x10", "since=1e3", "since=%201",
                   "since=%2B1", "since=%D9%A1", "since=" + "9" * 30, "since=" + "9" * 5000,
                   "since=0&since=1", f"since=0&history={history}&history=zz",
                   "history=" + "0" * 65, "history=%00" * 8, "wait=inf", "wait=nan",
                   "wait=-0", "wait=1e-400", "wait=", "since=", "unknown=1", "since=%FF",
                   f"since=1&history={history}&wait=0"]
        bodies = [b"{", b"[]", b"null", b'{"nodeId": NaN}', b'{"nodeId": "' + b"0" * 70 + b'"}',
                  b"\xff\xfe\x00", b"[" * 50000 + b"]" * 50000, b'{"nodeId": 1e400}',
                  b'{"nodeId": "\\ud800"}', b"x" * (70 * 1024), b'{"a":' * 3000 + b"1" + b"}" * 3000]
        statuses = {}
        for i in range(300):
            kind = r.randrange(4)
            if kind == 0:  # anyone: bad signature headers on any endpoint
                path = r.choice(paths)
                method = "GET" if "changes" in path or "blobs" in path else "POST"
                names = [signing.H_TIMESTAMP, signing.H_NONCE, signing.H_NODE,
                         signing.H_SIGNATURE]
                headers = self.signed(method, path, b"{}", **{
                    r.choice(names): r.choice(header_values) for _ in range(r.randrange(1, 4))})
                status, raw = await self.send(method, path, headers, b"{}")
            elif kind == 1:  # a member: bad queries
                path = "/api/cluster/sync/changes?" + r.choice(queries)
                status, raw = await self.send("GET", path, self.signed("GET", path))
            elif kind == 2:  # a member: bad bodies
                body = r.choice(bodies)
                path = "/api/cluster/sync/hello"
                status, raw = await self.send("POST", path, self.signed("POST", path, body),
                                              body)
            else:  # a member: odd paths and methods
                path = r.choice(["/api/cluster/sync/blobs/" + "z" * 64,
                                 "/api/cluster/sync/blobs/..%2F..%2Fetc%2Fpasswd",
                                 "/api/cluster/sync/blobs/" + "a" * 5000,
                                 "/api/cluster/sync/changes/extra", "/api/cluster/sync/",
                                 "/api/cluster/sync/changes?since=0"])
                method = r.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
                status, raw = await self.send(method, path, self.signed(method, path))
            statuses[status] = statuses.get(status, 0) + 1
            self.assertLess(status, 500, (i, raw[:300]))
            if status >= 400:
                error = json.loads(raw)
                self.assertRegex(error["error"], r"^[A-Z][A-Z0-9_]*$", i)
        self.assertEqual(await self.leader.store.revision(), revision)
        self.assertEqual(await live(self.leader), before)
        self.assertGreater(statuses.get(401, 0), 20, statuses)
        self.assertGreater(statuses.get(400, 0), 20, statuses)
        applied = await self.sync()  # still serving
        self.assertEqual(applied.mode, "full")


class JoinAnswerFuzzTests(SyncTestCase):
    """Joining, when the join code's URL answers hostile content signed with
    the join key (anything that has the code can sign it): 502 BAD_PAYLOAD
    or another clear 4xx/5xx code, and nothing saved."""

    async def test_hostile_join_answers(self):
        status, body = await self.call(self.to_leader, "POST", "/api/cluster/enable-leader",
                                       {"leaderUrl": "http://198.18.0.53:8080"})
        self.assertEqual(status, 200, body)
        status, body = await self.call(self.to_leader, "GET", "/api/cluster/join-code")
        text = body["joinCode"]
        from sentinel.cluster import joincode

        keys = signing.ClusterKeys.from_secret(
            joincode.parse(text, self.clock.seconds()).key)
        answers = [b"[" * 100000 + b"]" * 100000, b"[]", b"null", b'"text"', b"{",
                   b'{"secret": 5}', b'{"secret": "AAAA"}', b'{"secret": null}',
                   b'{"secret": "' + b"A" * 100 + b'"}', b"\xff\xfe"]
        for answer in answers:
            self.follower.leader_http = self.pump.add(StubTreq(
                SignedLeader(keys, self.clock, lambda n: answer)))
            status, body = await self.call(self.to_follower, "POST",
                                           "/api/cluster/configure-follower",
                                           {"joinCode": text})
            self.assertEqual((status, body["error"]), (502, "BAD_PAYLOAD"), answer[:20])
            self.assertEqual(self.follower.state.role, "standalone")
