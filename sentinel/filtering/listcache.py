"""
Compiled blocklists, cached by content sha256, and the merged dicts built
from them (cached by the set of (list id, sha) they merge).  A rule or
client change reuses these; only new list contents are decoded and only a
changed set of lists is merged again.

Decoding and merging a large list takes a while, so the engine runs
L{decode_blob} and L{merge} in a thread; merge inserts in chunks so the
reactor thread gets the GIL between them and DNS keeps flowing.
"""

import ctypes
import ctypes.util
from itertools import repeat

from sentinel.filtering.listformat import decode
from sentinel.filtering.policy import HASH_MASK, MergedLists

CHUNK = 50_000


def decode_blob(blob):
    """
    Blob bytes -> (blocked, allowed) as lists of name hashes (see
    L{sentinel.filtering.policy.name_hash}); raises ListFormatError.
    """
    mask = HASH_MASK
    return decode(blob, lambda key: hash(key) & mask)


def merge(key, decoded):
    """
    key: ((list id, sha), ...); decoded: {sha: (blocked, allowed) hashes}.  The
    lowest list id is credited for a name several lists block; an exception
    from any of the lists wins over every block.
    """
    names = {}
    has_allows = False
    ordered = sorted(key, reverse=True)  # lowest id written last, so it wins
    for list_id, sha in ordered:
        blocked = decoded[sha][0]
        for start in range(0, len(blocked), CHUNK):
            names.update(zip(blocked[start:start + CHUNK], repeat(list_id)))
    for list_id, sha in ordered:
        allowed = decoded[sha][1]
        if allowed:
            has_allows = True
            names.update(zip(allowed, repeat(-list_id)))
    return MergedLists(names, has_allows, tuple(i for i, _ in key))


def _libc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_trim = _libc_trim()


def trim_memory():
    """
    Give memory freed by a rebuild back to the OS.  glibc keeps large freed
    blocks (old dict tables, decoded pieces) in its heap after its mmap
    threshold has adapted upwards; without this a daily refresh of a 1M
    list leaves ~50 MB of RSS behind.
    """
    if _trim is not None:
        _trim(0)


class ListCache:
    def __init__(self):
        self.decoded = {}  # sha -> (blocked, allowed) name hashes
        self.merged = {}  # key -> MergedLists

    def missing_shas(self, keys):
        return {sha for key in keys for _, sha in key if sha not in self.decoded}

    def retain(self, keys, shas):
        """Forget merged sets not in keys and decoded lists not in shas."""
        for key in list(self.merged):
            if key not in keys:
                del self.merged[key]
        for sha in list(self.decoded):
            if sha not in shas:
                del self.decoded[sha]

    def domains(self):
        return sum(len(m.names) for m in self.merged.values())
