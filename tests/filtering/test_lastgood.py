"""
The last-known-good policy file (sentinel/filtering/lastgood.py): its
format round-trips, every kind of damage is one clear error (never another
exception), it is written atomically, 0600, debounced and off the reactor
thread, and the engine enforces it while the store cannot be opened.
"""

import json
import os
import shutil
import stat
import struct
import tempfile

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.dns.decision import BLOCK, PASS, PolicySource
from sentinel.filtering import lastgood, listcache
from sentinel.filtering.compiler import FilterConfig
from sentinel.filtering.engine import PolicyEngine
from sentinel.filtering.lastgood import LastGoodError
from sentinel.store import StoreUnavailable
from tests.filtering.helpers import list_blob, wire
from tests.filtering.storehelp import inline, open_store


def _scratch(testcase):
    path = tempfile.mkdtemp(prefix="sentinel-lkg-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


def _config():
    sha, blob = list_blob("ads.example\n@@||ok.ads.example^\n")
    config = FilterConfig()
    config.revision = 7
    config.entities["rule"][3] = {"pattern": "rule.example", "action": "block"}
    config.entities["blocklist"][2] = {"name": "ads", "url": "http://127.0.0.1/l",
                                       "content": {"sha256": sha}}
    config.entities["client"][5] = {"name": "kid", "addresses": ["10.0.0.5"],
                                    "kill_switch": True}
    config.settings["dns"] = {"blocking_mode": "refused"}
    return config, {sha: blob}


def _file(saved_at=1000.0):
    config, blobs = _config()
    return lastgood.encode(lastgood.config_doc(config), blobs, saved_at)


def _resealed(data):
    """data with its checksum made to match again (a file this code did not write)."""
    import hashlib

    return data + hashlib.sha256(data).digest()


class FormatTests(SynchronousTestCase):
    def test_round_trip(self):
        config, blobs = _config()
        saved = lastgood.decode(lastgood.encode(lastgood.config_doc(config), blobs, 1234.5))
        self.assertEqual(saved.saved_at, 1234.5)
        self.assertEqual(saved.blobs, blobs)
        self.assertEqual(saved.config.revision, 7)
        self.assertEqual(saved.config.entities, config.entities)
        self.assertEqual(saved.config.settings, config.settings)

    def test_empty_configuration_round_trips(self):
        saved = lastgood.decode(lastgood.encode(lastgood.config_doc(FilterConfig()), {}, 1.0))
        self.assertEqual(saved.config.entities, FilterConfig().entities)
        self.assertEqual(saved.blobs, {})

    def assertUnusable(self, data, text):
        with self.assertRaises(LastGoodError) as caught:
            lastgood.decode(data)
        self.assertIn(text, str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))

    def test_truncated_anywhere(self):
        data = _file()
        for size in range(len(data)):
            with self.assertRaises(LastGoodError, msg=f"cut to {size} bytes"):
                lastgood.decode(data[:size])
        self.assertUnusable(b"", "truncated (0 bytes)")
        self.assertUnusable(data[:40], "truncated (40 bytes)")
        self.assertUnusable(data[:-1], "damaged or truncated")

    def test_any_changed_byte(self):
        data = _file()
        for at in range(len(data)):
            damaged = bytearray(data)
            damaged[at] ^= 0x41
            with self.assertRaises(LastGoodError, msg=f"byte {at} changed"):
                lastgood.decode(bytes(damaged))

    def test_garbage_and_other_files(self):
        self.assertUnusable(os.urandom(5000), "not a Sentinel last-known-good policy file")
        self.assertUnusable(b"SQLite format 3\x00" + bytes(4000), "not a Sentinel")
        self.assertUnusable(b"{}", "not a Sentinel")

    def test_newer_and_unknown_versions(self):
        data = bytearray(_file()[:-32])
        struct.pack_into("!H", data, 8, lastgood.VERSION + 1)
        self.assertUnusable(_resealed(bytes(data)), "written by a newer Sentinel (format "
                                                    "version 2; this one reads version 1)")
        struct.pack_into("!H", data, 8, 0)
        self.assertUnusable(_resealed(bytes(data)), "unknown format version 0")

    def test_well_sealed_but_wrong_inside(self):
        header = struct.Struct("!8sHdII")

        def sealed(config, count=0, tail=b""):
            return _resealed(header.pack(lastgood.MAGIC, 1, 1.0, len(config), count)
                             + config + tail)

        self.assertUnusable(sealed(b"{not json"), "not valid JSON")
        self.assertUnusable(sealed(b"\xff\xfe"), "not valid JSON")
        self.assertUnusable(sealed(b"[]"), "not the expected document")
        doc = {"entities": {"bogus": {}}, "settings": {}}
        self.assertUnusable(sealed(json.dumps(doc).encode()), "unknown kind 'bogus'")
        doc = {"entities": {"rule": {"x": {}}}, "settings": {}}
        self.assertUnusable(sealed(json.dumps(doc).encode()), "bad rule id 'x'")
        good = json.dumps({"entities": {}, "settings": {}}).encode()
        self.assertUnusable(sealed(good, count=1), "cut short")
        self.assertUnusable(sealed(good, count=1, tail=bytes(32) + struct.pack("!I", 99)),
                            "cut short")
        self.assertUnusable(sealed(good, tail=b"extra"), "5 unexpected bytes")
        self.assertUnusable(_resealed(header.pack(lastgood.MAGIC, 1, 1.0, 10**6, 0)),
                            "cut short")


class FileTests(SynchronousTestCase):
    def setUp(self):
        self.dir = _scratch(self)
        self.path = os.path.join(self.dir, "policy.lkg")

    def test_written_atomically_0600_and_read_back(self):
        config, blobs = _config()
        old = os.umask(0)
        try:
            lastgood.write_file(self.path, lastgood.config_doc(config), blobs, 99.0)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(self.dir), ["policy.lkg"])  # no temporary file left
        saved = lastgood.read_file(self.path)
        self.assertEqual((saved.saved_at, saved.blobs), (99.0, blobs))

    def test_missing_is_none(self):
        self.assertIsNone(lastgood.read_file(self.path))

    def assertUnreadable(self, text):
        with self.assertRaises(LastGoodError) as caught:
            lastgood.read_file(self.path)
        self.assertIn(self.path, str(caught.exception))
        self.assertIn(text, str(caught.exception))

    def test_damaged_file_names_itself(self):
        with open(self.path, "wb") as f:
            f.write(_file()[:100])
        self.assertUnreadable("cannot be used: it is damaged or truncated")

    def test_huge_file_is_not_read(self):
        with open(self.path, "wb") as f:
            f.truncate(lastgood.MAX_FILE + 1)  # sparse: costs no disk
        self.assertUnreadable(f": larger than {lastgood.MAX_FILE} bytes")

    def test_not_a_regular_file(self):
        os.mkdir(self.path)
        self.assertUnreadable(": not a regular file")
        os.rmdir(self.path)
        os.mkfifo(self.path)  # would block a plain open() forever
        self.assertUnreadable(": not a regular file")


class FakeStore:
    """The store as the engine and the writer see it, never opened."""

    def __init__(self, blobs=None):
        self.blobs = dict(blobs or {})
        self.reads = []

    def subscribe(self, observer):
        return lambda: None

    def get_blob(self, sha):
        self.reads.append(sha)
        return succeed(self.blobs.get(sha))


class WriterTests(SynchronousTestCase):
    def setUp(self):
        self.path = os.path.join(_scratch(self), "policy.lkg")
        self.clock = Clock()
        self.config, blobs = _config()
        self.store = FakeStore(blobs)
        self.writes = []

        def run(fn, *args):
            self.writes.append(fn)
            return succeed(fn(*args))

        self.writer = lastgood.LastGoodWriter(self.path, self.clock, self.store.get_blob, run)

    def describe(self):
        return lastgood.config_doc(self.config), set(self.store.blobs)

    def test_a_burst_of_changes_writes_once_after_it(self):
        for _ in range(5):
            self.writer.changed(self.describe)
            self.clock.advance(lastgood.DEBOUNCE / 2)
        self.assertFalse(os.path.exists(self.path))
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertEqual(self.writes, [lastgood.write_file])  # in a thread, once
        saved = lastgood.read_file(self.path)
        self.assertEqual(saved.blobs, self.store.blobs)
        self.assertEqual(saved.config.entities, self.config.entities)
        self.assertEqual(self.writer.saved_revision, 7)

    def test_unchanged_policy_is_not_written_again(self):
        self.writer.changed(self.describe)
        self.clock.advance(lastgood.DEBOUNCE)
        self.writer.changed(self.describe)  # e.g. a schedule boundary: same config
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertEqual(len(self.writes), 1)
        self.config.entities["rule"][4] = {"pattern": "more.example", "action": "block"}
        self.writer.changed(self.describe)
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertEqual(len(self.writes), 2)
        self.assertIn(4, lastgood.read_file(self.path).config.entities["rule"])

    def test_failure_is_one_line_and_retried(self):
        os.mkdir(self.path)  # the rename cannot replace a directory
        self.writer.changed(self.describe)
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertIn(f"cannot save the last-known-good policy to {self.path}",
                      self.writer.problem)
        self.assertEqual(self.flushLoggedErrors(), [])  # no traceback
        self.clock.advance(lastgood.RETRY)  # same failure: not logged again
        self.assertEqual(len(self.writes), 2)
        os.rmdir(self.path)
        self.clock.advance(lastgood.RETRY)
        self.assertIsNone(self.writer.problem)
        self.assertIsNotNone(lastgood.read_file(self.path))

    def test_store_unavailable_while_reading_contents(self):
        def down(sha):
            raise StoreUnavailable("the database failed")

        self.store.get_blob = down
        writer = lastgood.LastGoodWriter(self.path, self.clock, lambda s: self.store.get_blob(s),
                                         inline)
        writer.changed(self.describe)
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertIn("the database failed", writer.problem)
        self.assertFalse(os.path.exists(self.path))


class EngineTests(TestCase):
    """The engine saves what it enforces and enforces it when the store cannot open."""

    def setUp(self):
        self.path = os.path.join(_scratch(self), "policy.lkg")
        self.clock = Clock()
        self.clock.advance(10_000.0)

    def engine(self, store, ready, failed):
        source = PolicySource()
        engine = PolicyEngine(store, self.clock, source, ready=lambda: ready, run=inline,
                              lastgood_file=self.path, store_failed=lambda: failed)
        engine.startService()
        self.addCleanup(engine.stopService)
        return engine, source

    async def saved_policy(self):
        """A store with a rule and a blocklist; the engine saved its policy."""
        store = await open_store(self)
        sha, blob = list_blob("ads.example\n")

        async def tx(ctx):
            await ctx.put_blob(blob)
            await ctx.create("blocklist", {"name": "l", "url": "http://127.0.0.1/l",
                                           "content": {"sha256": sha}})
            await ctx.create("rule", {"pattern": "rule.example", "action": "block"})

        await store.transact(tx)
        engine, _ = self.engine(store, succeed(None), Deferred())
        await engine.settled()
        self.assertFalse(os.path.exists(self.path))  # debounced
        self.clock.advance(lastgood.DEBOUNCE)
        await engine.writer.idle()
        self.assertEqual(engine.status()["last_known_good_saved"], self.clock.seconds())
        engine.stopService()
        return store

    async def test_store_that_cannot_open_gets_the_saved_policy(self):
        store = await self.saved_policy()
        self.clock.advance(3600)
        ready = Deferred()
        engine, source = self.engine(FakeStore(), ready, succeed("the store is broken"))
        await engine.settled()

        def decide(name):
            d = source.current.decide("192.168.1.9", wire(name), 1)
            return d.action, d.reason

        self.assertEqual(decide("x.ads.example"), (BLOCK, "blocklist:1"))
        self.assertEqual(decide("rule.example"), (BLOCK, "rule:1"))
        self.assertEqual(decide("other.example"), (PASS, ""))
        status = engine.status()
        self.assertEqual(status["source"], "last-known-good")
        self.assertEqual(status["last_known_good_from"], 10_000.0 + lastgood.DEBOUNCE)
        self.assertIn("DNS filters with the last-known-good policy from 1970-01-01 02:46:42 "
                      "UTC, 1 h 0 min ago", engine.problem())
        self.assertIn("1 h 0 min ago meanwhile", engine.meanwhile())
        self.clock.advance(lastgood.DEBOUNCE)
        self.assertEqual(status["last_known_good_saved"], None)  # not written back
        # The store opens: its configuration replaces the saved one.
        await store.delete("rule", 1)
        engine.store = store
        ready.callback(None)
        await engine.settled()
        self.assertEqual(decide("rule.example"), (PASS, ""))
        self.assertEqual(decide("x.ads.example"), (BLOCK, "blocklist:1"))
        self.assertEqual(engine.status()["source"], "store")
        self.assertIsNone(engine.problem())

    async def test_store_read_failing_once_while_lists_load_is_retried(self):
        # The saved policy has a pause (so a boundary timer); its list is
        # still being decoded when the store opens and its first read fails.
        store = await self.saved_policy()
        await store.put("setting", "protection", {"paused": True, "until": 10_000.0 + 86400})
        engine, _ = self.engine(store, succeed(None), Deferred())
        await engine.settled()
        self.clock.advance(lastgood.DEBOUNCE)
        await engine.writer.idle()
        engine.stopService()
        await store.delete("rule", 1)
        held = []

        def run(fn, *args):
            if fn is listcache.decode_blob and not held:
                held.append(Deferred())
                return held[0].addCallback(lambda _: fn(*args))
            return inline(fn, *args)

        class FlakyStore:
            failures = [StoreUnavailable("the database is locked")]

            def __getattr__(self, name):
                return getattr(store, name)

            def snapshot(self, **kwargs):
                if self.failures:
                    return fail(self.failures.pop())
                return store.snapshot(**kwargs)

        ready = Deferred()
        engine = PolicyEngine(FakeStore(), self.clock, PolicySource(), ready=lambda: ready,
                              run=run, lastgood_file=self.path,
                              store_failed=lambda: succeed("broken"))
        engine.startService()
        self.addCleanup(engine.stopService)
        self.assertEqual(len(held), 1)  # the saved list is being decoded
        engine.store = FlakyStore()
        ready.callback(None)  # the store opens; reading it fails once
        held[0].callback(None)  # the saved policy is installed
        self.assertEqual(engine.status()["source"], "last-known-good")
        self.clock.advance(5)  # the read is tried again
        await engine.settled()
        self.assertEqual(engine.status()["source"], "store")

    test_store_read_failing_once_while_lists_load_is_retried.timeout = 10

    async def test_bad_file_means_pass_through_and_says_why(self):
        with open(self.path, "wb") as f:
            f.write(_file()[:-10])
        engine, source = self.engine(FakeStore(), Deferred(), succeed("broken"))
        self.assertEqual(source.current.decide("1.2.3.4", wire("rule.example"), 1).action, PASS)
        self.assertIn(f"DNS answers without filtering: {self.path} cannot be used: it is "
                      f"damaged or truncated", engine.problem())
        self.assertEqual(engine.meanwhile(), "DNS answers without filtering meanwhile")
        self.assertEqual(engine.status()["source"], "store")
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_no_file_means_pass_through(self):
        engine, source = self.engine(FakeStore(), Deferred(), succeed("broken"))
        self.assertIn("there is no last-known-good policy", engine.problem())
        self.assertEqual(source.current.decide("1.2.3.4", wire("a.example"), 1).action, PASS)
