"""
Compiled blocklists, cached by content sha256, and the merged dicts built
from them (cached by the set of (list id, sha) they merge).  A rule or
client change reuses these; only new list contents are decoded and only a
changed set of lists is merged again.

Decoding and merging a large list takes a while, so the engine runs
L{decode_blob} and L{merge} in a thread, and every step of them that holds
the GIL is small, so that the reactor thread gets the GIL between them and
DNS keeps flowing: names are decoded in pieces of ~10,000, merged one by
one into shards of at most ~SHARD_TARGET names (a dict's re-hash when it
grows is one such step: see L{sentinel.filtering.policy}), and contents no
longer used are released piece by piece in a thread too (L{release}):
freeing a 1M-name dict at once held the GIL as long as building it.
"""

import ctypes
import ctypes.util

from sentinel.filtering.listformat import decode
from sentinel.filtering.policy import HASH_MASK, SHARD_SHIFT, MergedLists, new_shards


def decode_blob(blob):
    """
    Blob bytes -> (blocked, allowed), each a list of pieces (lists) of name
    hashes (see L{sentinel.filtering.policy.name_hash}); raises
    ListFormatError.
    """
    mask = HASH_MASK
    return decode(blob, lambda key: hash(key) & mask, pieces=True)


def merge(key, decoded):
    """
    key: ((list id, sha), ...); decoded: {sha: (blocked, allowed) pieces of
    hashes}, as from L{decode_blob}.  The lowest list id is credited for a
    name several lists block; an exception from any of the lists wins over
    every block.
    """
    ordered = sorted(key, reverse=True)  # lowest id written last, so it wins
    total = sum(len(piece) for _, sha in key for part in decoded[sha] for piece in part)
    slots, dicts = new_shards(total)
    shift = SHARD_SHIFT
    has_allows = False
    for part, sign in ((0, 1), (1, -1)):
        for list_id, sha in ordered:
            value = sign * list_id
            for piece in decoded[sha][part]:
                has_allows = has_allows or sign < 0
                # One name per step: a shard's growth is the longest step.
                for h in piece:
                    slots[h >> shift][h] = value
    return MergedLists(slots, dicts, has_allows, tuple(i for i, _ in key))


def release(dropped, trim=False):
    """
    Let go of merged sets and decoded contents (L{ListCache.retain}'s
    result, emptied here) one shard or piece at a time, so that freeing
    millions of names never holds the GIL in one step.  Objects something
    else still uses are only let go of, not freed.  Then, with ``trim``,
    L{trim_memory}.  Run it in a thread.
    """
    parts = []
    while dropped:
        item = dropped.pop()
        if isinstance(item, MergedLists):
            parts.extend(item.dicts)
        else:
            for half in item:
                parts.extend(half)
        del item
    while parts:
        parts.pop()
    if trim:
        trim_memory()


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
        self.decoded = {}  # sha -> (blocked, allowed) pieces of name hashes
        self.merged = {}  # key -> MergedLists

    def missing_shas(self, keys):
        return {sha for key in keys for _, sha in key if sha not in self.decoded}

    def retain(self, keys, shas):
        """
        Forget merged sets not in keys and decoded lists not in shas; the
        forgotten ones are returned, for L{release}.
        """
        dropped = []
        for key in list(self.merged):
            if key not in keys:
                dropped.append(self.merged.pop(key))
        for sha in list(self.decoded):
            if sha not in shas:
                dropped.append(self.decoded.pop(sha))
        return dropped

    def domains(self):
        return sum(m.count for m in self.merged.values())
