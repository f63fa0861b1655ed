"""
Encryption of secrets at rest: AES-256-GCM under a per-node key kept in a
0600 key file in the data directory, created on first start.

Every ciphertext is bound to its purpose through the associated data (e.g.
the secret's name), so a ciphertext cannot be moved to another name.
"""

import base64
import os
import stat

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32
NONCE_SIZE = 12


class KeyFileError(Exception):
    pass


class DecryptError(Exception):
    """The ciphertext was not produced under this key (or was altered)."""


class SecretBox:
    def __init__(self, key: bytes):
        if len(key) != KEY_SIZE:
            raise ValueError("AES-256 key must be 32 bytes")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < NONCE_SIZE + 16:
            raise DecryptError("ciphertext too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise DecryptError("authentication failed") from None

    def encrypt_text(self, plaintext: str, aad: str) -> str:
        sealed = self.encrypt(plaintext.encode("utf-8"), aad.encode("utf-8"))
        return base64.b64encode(sealed).decode("ascii")

    def decrypt_text(self, sealed: str, aad: str) -> str:
        try:
            raw = base64.b64decode(sealed.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise DecryptError("not base64") from None
        return self.decrypt(raw, aad.encode("utf-8")).decode("utf-8")

    def __repr__(self):
        return "<SecretBox>"  # never show key material


def load_or_create_key(path: str) -> bytes:
    """
    Read the node key, creating it (mode 0600, atomically) only if there is
    no file at all.  Anything wrong with an existing file is a KeyFileError
    with one actionable line, and the file is left exactly as it is: a
    damaged key may still be restorable, and secrets sealed under the
    original one are unreadable without it.
    """
    if os.path.lexists(path):
        return read_key(path)
    # Write a temporary file and link it into place: the key file either
    # does not exist or is complete, even if we crash half-way, and a key
    # written concurrently by another process is never overwritten.
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, AESGCM.generate_key(bit_length=256))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as e:
        raise KeyFileError(f"cannot create the node key {path} ({e.strerror}); fix the "
                           f"directory's owner/permissions") from None
    return read_key(path)


def read_key(path: str) -> bytes:
    """The key in an existing key file (never creates nor changes it)."""
    keep = ("restore it from a backup (it was left as it is: secrets sealed under the "
            "original key cannot be read without it), or move it away to start with a new "
            "key and set the secrets again")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise KeyFileError(f"{path} is a symbolic link to a missing file; restore the "
                               f"key it pointed to") from None
        raise KeyFileError(f"{path} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"{path} cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path} is not a regular file (a directory?); the node key must be "
                           f"a {KEY_SIZE}-byte file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by other users (mode {st.st_mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    try:
        with open(path, "rb") as f:
            key = f.read(KEY_SIZE + 1)
    except OSError as e:
        raise KeyFileError(f"{path} cannot be read ({e.strerror}); it must belong to the user "
                           f"Sentinel runs as (uid {os.geteuid()})") from None
    if len(key) != KEY_SIZE:
        size = "empty" if not key else (
            f"{st.st_size} bytes" if st.st_size != KEY_SIZE else "shorter than it says")
        raise KeyFileError(f"{path} is not a {KEY_SIZE}-byte node key ({size}): it is damaged "
                           f"or not Sentinel's key file; {keep}")
    return key
