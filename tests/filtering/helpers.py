"""Shared helpers for the filtering tests."""

import hashlib

from sentinel.filtering import listformat
from sentinel.filtering.compiler import FilterConfig, Plan
from sentinel.filtering.listcache import decode_blob, merge
from sentinel.filtering.names import to_key
from sentinel.store.entities import Entity


def wire(name):
    """'ads.example.com' -> the qname the DNS server passes to decide()."""
    if name in (".", ""):
        return b"\x00"
    return to_key(name.lower().rstrip(".")) + b"\x00"


def list_blob(text):
    """Blocklist text -> (sha256, blob) as the refresher stores it."""
    blob = listformat.encode(listformat.parse(text))
    return hashlib.sha256(blob).hexdigest(), blob


class World:
    """Entities + list contents -> compiled policies, without a store."""

    def __init__(self):
        self.config = FilterConfig()
        self.blobs = {}
        self._revision = 0

    def put(self, kind, key, data):
        self._revision += 1
        self.config.apply(Entity(kind, str(key), self._revision, data))

    def delete(self, kind, key):
        self._revision += 1
        self.config.apply(Entity(kind, str(key), self._revision, None))

    def blocklist(self, key, text, **fields):
        sha, blob = list_blob(text)
        self.blobs[sha] = blob
        data = {"name": f"list{key}", "url": f"http://127.0.0.1/{key}.txt",
                "content": {"sha256": sha, "url": f"http://127.0.0.1/{key}.txt"}}
        data.update(fields)
        self.put("blocklist", key, data)

    def plan(self, now=0.0):
        return Plan(self.config, now)

    def policy(self, now=0.0):
        plan = self.plan(now)
        decoded = {sha: decode_blob(blob) for sha, blob in self.blobs.items()}
        return plan.build({key: merge(key, decoded) for key in plan.needed()})
