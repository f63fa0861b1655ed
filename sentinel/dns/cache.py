"""
The answer cache (pure; the caller passes ``now``).

Keyed by the lowercase wire name, type, class and the query flags that
change the answer (DO, CD, AD) — see L{sentinel.dns.wire.Query.key}.  It
holds upstream answers only: policy decisions (blocks, rewrites) are made
before the cache on every query, so a policy change never needs a flush.

Bounded by entry count and by bytes (``max_bytes``, L{MAX_BYTES}), with
LRU eviction: an answer may be up to 64 KiB (over TCP), so a client asking
for names of a domain whose server answers with huge records could
otherwise make 20000 entries hold over a gigabyte.  An entry's cost is its
key, twice its records (as stored, and as last re-rendered with TTLs
counted down) and ~400 bytes of objects (measured: ~450 bytes for an
A-record answer).  An answer costing more than the whole budget is not
cached.  With serve-stale (RFC 8767)
on, expired answers are kept (still LRU-bounded) for up to ``stale_max``
seconds so they can be served, with TTL 30, when every upstream fails.

When the wall clock steps, L{Cache.shift} moves every entry's times with
it (called by the engine's clock-step listener).
"""

from collections import OrderedDict

STALE_MAX = 86400  # RFC 8767 suggests 1-3 days
MAX_BYTES = 64 * 1024 * 1024  # what the answers may hold in all, about (see cost())
ENTRY_OVERHEAD = 400  # the Answer, its TTL tables and the dict slot, about


def cost(key, entry):
    """The bytes an entry is counted for (see the module doc)."""
    return len(key) + 2 * len(entry.body) + ENTRY_OVERHEAD


class Cache:
    def __init__(self, size=10000, min_ttl=0, max_ttl=86400, max_negative_ttl=3600,
                 serve_stale=True, stale_max=STALE_MAX, max_bytes=MAX_BYTES):
        self._data = OrderedDict()
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # cost() of the entries held
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.serve_stale = serve_stale
        self.stale_max = stale_max
        self.evictions = 0

    def configure(self, size, min_ttl, max_ttl, max_negative_ttl, serve_stale):
        """New limits apply to new answers; a smaller size evicts the oldest."""
        self.size = size
        self.min_ttl, self.max_ttl = min_ttl, max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.serve_stale = serve_stale
        self._trim()

    def __len__(self):
        return len(self._data)

    def get(self, key, now):
        """A fresh answer, or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if now < entry.expires:
            self._data.move_to_end(key)
            return entry
        if not self.serve_stale or now > entry.expires + self.stale_max:
            del self._data[key]
            self.bytes -= cost(key, entry)
        return None

    def stale(self, key, now):
        """An expired answer that may still be served (RFC 8767), or None."""
        if not self.serve_stale:
            return None
        entry = self._data.get(key)
        if entry is None or now > entry.expires + self.stale_max:
            return None
        return entry

    def put(self, key, entry, now):
        """Remember an answer (stamped with ``now``) if it may be cached."""
        if entry.ttl <= 0 or self.size <= 0:
            return
        size = cost(key, entry)
        if size > self.max_bytes:
            return
        entry.stamp(now)
        data = self._data
        old = data.get(key)
        if old is not None:
            self.bytes -= cost(key, old)
        data[key] = entry
        data.move_to_end(key)
        self.bytes += size
        if len(data) > self.size or self.bytes > self.max_bytes:
            if len(data) == self.size + 1 and self.bytes <= self.max_bytes:
                # the usual case: one out, one in
                k, e = data.popitem(last=False)
                self.bytes -= cost(k, e)
                self.evictions += 1
            else:
                self._trim()

    def shift(self, step):
        """
        The wall clock stepped by ``step`` seconds: every answer keeps the
        TTL it had left (a step forward does not expire the whole cache, nor
        push it past ``stale_max``; a step back does not keep answers for
        the step on top of their TTL).
        """
        whole = round(step)
        for entry in self._data.values():
            entry.stored += whole
            entry.expires += step

    def _trim(self):
        data = self._data
        size = max(self.size, 0)
        while len(data) > size or (data and self.bytes > self.max_bytes):
            k, e = data.popitem(last=False)
            self.bytes -= cost(k, e)
            self.evictions += 1

    def flush(self):
        self._data.clear()
        self.bytes = 0
