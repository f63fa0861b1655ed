"""The node key file and secrets sealed at rest."""

import os
import stat
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.crypto import DecryptError, KeyFileError, SecretBox, load_or_create_key
from sentinel.secrets import SecretNameError, Secrets
from sentinel.store import Store
from sentinel.store.database import SqliteDatabase


class KeyFileTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "node.key")

    def test_created_0600_once(self):
        key = load_or_create_key(self.path)
        self.assertEqual(len(key), 32)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(load_or_create_key(self.path), key)
        self.assertEqual(os.listdir(self.dir), ["node.key"])  # no temp files left

    def test_refuses_key_readable_by_others(self):
        load_or_create_key(self.path)
        os.chmod(self.path, 0o644)
        e = self.assertRaises(KeyFileError, load_or_create_key, self.path)
        self.assertIn("chmod 600", str(e))

    def test_refuses_truncated_key(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"short")
        os.close(fd)
        self.assertRaises(KeyFileError, load_or_create_key, self.path)


class SecretBoxTests(SynchronousTestCase):
    def test_round_trip_and_binding(self):
        box = SecretBox(os.urandom(32))
        sealed = box.encrypt_text("hunter2", "secret:a")
        self.assertNotIn("hunter2", sealed)
        self.assertEqual(box.decrypt_text(sealed, "secret:a"), "hunter2")
        # Moved to another name, or opened with another key: refused.
        self.assertRaises(DecryptError, box.decrypt_text, sealed, "secret:b")
        self.assertRaises(DecryptError, SecretBox(os.urandom(32)).decrypt_text, sealed, "secret:a")
        self.assertRaises(DecryptError, box.decrypt_text, "!!!", "secret:a")
        # Same plaintext, fresh nonce each time.
        self.assertNotEqual(sealed, box.encrypt_text("hunter2", "secret:a"))

    def test_repr_hides_key(self):
        self.assertEqual(repr(SecretBox(b"k" * 32)), "<SecretBox>")


class SecretsTests(TestCase):
    async def test_never_stored_in_clear(self):
        path = os.path.join(tempfile.mkdtemp(), "s.db")
        store = Store(SqliteDatabase(path, reactor), reactor)
        await store.start()
        self.addCleanup(store.stop)
        secrets = Secrets(store, SecretBox(os.urandom(32)))
        await secrets.set("smtp.password", "correct horse battery staple")
        self.assertEqual(await secrets.get("smtp.password"), "correct horse battery staple")
        self.assertEqual(await secrets.names(), ["smtp.password"])
        self.assertIsNone(await secrets.get("other"))
        await store.stop()
        with open(path, "rb") as f:
            raw = f.read()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                with open(path + suffix, "rb") as f:
                    raw += f.read()
        self.assertNotIn(b"correct horse", raw)

    def test_names_are_checked(self):
        secrets = Secrets(None, SecretBox(os.urandom(32)))
        for bad in ("", "UPPER", "a b", "x" * 65, "../etc"):
            self.assertRaises(SecretNameError, secrets.seal, bad, "v")
