"""
The sha256 that names a blob (blobs are stored content-addressed), computed
off the reactor thread when the contents are large: hashing a 2M-name
blocklist blob (14 MB) takes 8-24 ms, and on the reactor thread every DNS
query waited that long.  hashlib releases the GIL while it hashes, so in a
thread it costs DNS nothing.
"""

import hashlib

from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread

INLINE_BYTES = 1 << 20  # hashed in ~0.5 ms: not worth the trip to a thread


def _hexdigest(data):
    return hashlib.sha256(data).hexdigest()


def sha256_hex(data):
    """A Deferred firing with the sha256 hex digest of ``data`` (bytes)."""
    if len(data) < INLINE_BYTES:
        return succeed(_hexdigest(data))
    return deferToThread(_hexdigest, data)
