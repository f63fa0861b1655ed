"""The node key file and secrets sealed at rest."""

import builtins
import io
import os
import stat
import shutil
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.crypto import (
    DecryptError, KeyFileError, SecretBox, load_or_create_key, read_key,
)
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

    def write_key(self, content, mode=0o600):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, mode)
        os.write(fd, content)
        os.close(fd)

    def assertRefusedAndKept(self, expected):
        """One clear line; the file (if any) is left exactly as it was."""
        before = _snapshot(self.path)
        e = self.assertRaises(KeyFileError, load_or_create_key, self.path)
        self.assertIn(expected, str(e))
        self.assertIn(self.path, str(e))
        self.assertNotIn("\n", str(e))
        self.assertEqual(_snapshot(self.path), before)
        self.assertEqual(sorted(os.listdir(self.dir)), ["node.key"])  # no temp file left
        return str(e)

    def test_refuses_truncated_key(self):
        self.write_key(b"short")
        message = self.assertRefusedAndKept("not a 32-byte node key (5 bytes)")
        self.assertIn("restore it from a backup", message)

    def test_refuses_empty_oversized_and_text_keys(self):
        self.write_key(b"")
        self.assertRefusedAndKept("(empty)")
        os.unlink(self.path)
        self.write_key(os.urandom(33))
        self.assertRefusedAndKept("(33 bytes)")
        os.unlink(self.path)
        self.write_key(b"-----BEGIN PRIVATE KEY-----\nMIIE...\n")  # someone's PEM file
        self.assertRefusedAndKept("not a 32-byte node key")

    def test_directory_or_dangling_link_is_not_replaced(self):
        os.mkdir(self.path)
        self.assertRefusedAndKept("is not a regular file")
        os.rmdir(self.path)
        os.symlink(os.path.join(self.dir, "gone", "node.key"), self.path)
        self.assertRefusedAndKept("symbolic link to a missing file")
        self.assertTrue(os.path.islink(self.path))

    def test_link_to_a_good_key_is_used(self):
        real = os.path.join(self.dir, "real.key")
        key = load_or_create_key(real)
        os.symlink(real, self.path)
        self.assertEqual(load_or_create_key(self.path), key)

    def test_unreadable_key(self):
        self.write_key(os.urandom(32))
        real_open = open

        def denied(path, *args, **kwargs):
            if path == self.path:
                raise PermissionError(13, "Permission denied")
            return real_open(path, *args, **kwargs)

        self.patch(builtins, "open", denied)  # as root, chmod 000 would not stop us
        self.assertRefusedAndKept("cannot be read (Permission denied)")

    def test_key_directory_not_writable(self):
        path = os.path.join(self.dir, "missing-dir", "node.key")
        e = self.assertRaises(KeyFileError, load_or_create_key, path)
        self.assertIn(f"cannot create the node key {path}", str(e))

    def test_read_key_never_creates(self):
        self.assertRaises(KeyFileError, read_key, self.path)
        self.assertFalse(os.path.lexists(self.path))


def _snapshot(path):
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    content = None
    if stat.S_ISREG(st.st_mode):
        with io.open(path, "rb") as f:  # not builtins.open: a test patches it
            content = f.read()
    return (st.st_mode, st.st_mtime_ns, content)


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


class KeyCheckTests(TestCase):
    """Everything sealed under the node key is checked, whoever owns it."""

    async def test_names_every_value_another_key_sealed(self):
        from sentinel.cluster.wiring import _sealed_secret
        from sentinel.cluster.state import K_MEMBERSHIP, SECRET_AAD
        from sentinel.ha import files
        from sentinel.ha.state import LOCAL_KEY, sealed_password
        from sentinel.keycheck import KeyCheck
        from sentinel.secrets import sealed_values

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory, True)
        store = Store(SqliteDatabase(os.path.join(directory, "s.db"), reactor), reactor)
        await store.start()
        self.addCleanup(store.stop)
        old, new = SecretBox(os.urandom(32)), SecretBox(os.urandom(32))
        sources = [sealed_values, _sealed_secret, sealed_password]
        check = KeyCheck(store, new, "/data/node.key", sources)
        self.assertIsNone(await check.run())  # nothing sealed yet

        await Secrets(store, old).set("smtp.password", "x")
        await store.set_local(K_MEMBERSHIP, {"role": "follower", "secret": old.encrypt_text(
            "c2VjcmV0", SECRET_AAD)})
        await store.set_local(LOCAL_KEY, {"settings": {}, "password": old.encrypt_text(
            "vrrp", files.PASSWORD_AAD)})
        problem = await check.run()
        self.assertIn("the node key /data/node.key cannot decrypt 3 stored value(s) (secret "
                      "smtp.password, the cluster secret, the VRRP password)", problem)
        self.assertIsNone(await KeyCheck(store, old, "/data/node.key", sources).run())
        await Secrets(store, new).set("smtp.password", "x")  # set again under the new key
        self.assertIn("cannot decrypt 2 stored value(s)", await check.run())
