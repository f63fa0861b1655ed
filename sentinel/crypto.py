"""
Encryption of secrets at rest: AES-256-GCM under a per-node key kept in a
0600 key file in the data directory, created on first start.

Every ciphertext is bound to its purpose through the associated data (e.g.
the secret's name), so a ciphertext cannot be moved to another name.
"""

import base64
import os

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
    Read the node key, creating it (mode 0600, atomically) if it does not
    exist.  A key file with the wrong size or permissions open to others is
    an error: we refuse to run with a key someone else could read.
    """
    if os.path.exists(path):
        return _read_key(path)
    # Write a temporary file and link it into place: the key file either
    # does not exist or is complete, even if we crash half-way, and a key
    # written concurrently by another process is never overwritten.
    tmp = f"{path}.tmp.{os.getpid()}"
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
    return _read_key(path)


def _read_key(path):
    st = os.stat(path)
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by other users (mode {st.st_mode & 0o777:o}); "
            f"run: chmod 600 {path}"
        )
    with open(path, "rb") as f:
        key = f.read()
    if len(key) != KEY_SIZE:
        raise KeyFileError(f"{path} is not a {KEY_SIZE}-byte key file")
    return key
