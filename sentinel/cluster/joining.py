"""
Join codes on the leader: single-use, expiring, and never the cluster
secret itself.

Each code the leader issues carries its own random 32-byte join key and a
random id.  The leader remembers the codes it issued in node_state
``cluster.join_codes`` (never synced; keys sealed under the node key; at
most L{MAX_CODES}, expired ones dropped) together with a fingerprint of
the cluster secret they were issued for.  A follower proves it holds a
code by signing ``POST /api/cluster/sync/join`` with keys derived from
the join key (same HMAC scheme as every sync request, plus the
``X-Sentinel-Join`` id header); the leader then deletes the code -- in
one transaction, so only one follower can ever use it -- and answers with
the cluster secret encrypted (AES-256-GCM) under the join key.  An
expired code, a used one, or one issued before the leader left or
re-created its secret is refused on the leader, whatever the code says.
"""

import base64
import hashlib
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentinel.crypto import DecryptError

K_CODES = "cluster.join_codes"
H_JOIN = "X-Sentinel-Join"
MAX_CODES = 20
KEY_SIZE = 32
_ID = re.compile(r"^[0-9a-f]{32}$")
_WRAP_AAD = b"sentinel-join-v1\n"


def valid_id(text):
    return isinstance(text, str) and bool(_ID.match(text))


def fingerprint(secret):
    """Which cluster secret a code was issued for (not the secret)."""
    return hashlib.sha256(b"sentinel-join-fp\n" + secret).hexdigest()[:32]


def _aad(code_id):
    return f"cluster:join:{code_id}"


def wrap_secret(keys, request_nonce, secret):
    """The cluster secret for the follower, encrypted under the join keys."""
    nonce = os.urandom(12)
    sealed = AESGCM(keys.wire).encrypt(nonce, secret, _WRAP_AAD + request_nonce.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def unwrap_secret(keys, request_nonce, text):
    """The follower's side of L{wrap_secret}; ValueError if it is not valid."""
    try:
        raw = base64.b64decode(text, validate=True)
        secret = AESGCM(keys.wire).decrypt(raw[:12], raw[12:],
                                           _WRAP_AAD + request_nonce.encode())
    except (InvalidTag, ValueError, TypeError):
        raise ValueError("the cluster secret in the answer is not valid") from None
    if len(secret) != 32:
        raise ValueError("the cluster secret in the answer is not valid")
    return secret


class JoinCodes:
    """The leader's registry of outstanding join codes."""

    def __init__(self, store, box, clock):
        self._store = store
        self._box = box
        self._clock = clock

    def _live(self, stored, now):
        if not isinstance(stored, dict):
            return {}
        return {k: v for k, v in stored.items()
                if valid_id(k) and isinstance(v, dict) and isinstance(v.get("expires"), int)
                and v["expires"] >= now}

    async def issue(self, secret, ttl):
        """(code id, join key, expires) of a new code for ``secret``."""
        code_id, key = os.urandom(16).hex(), os.urandom(KEY_SIZE)
        now = self._clock.seconds()
        expires = int(now + ttl)
        entry = {"key": self._box.encrypt_text(base64.b64encode(key).decode("ascii"),
                                               _aad(code_id)),
                 "expires": expires, "cluster": fingerprint(secret)}

        async def body(ctx):
            codes = self._live(await ctx.get_local(K_CODES), now)
            codes[code_id] = entry
            while len(codes) > MAX_CODES:  # the oldest go first
                del codes[min(codes, key=lambda k: codes[k]["expires"])]
            await ctx.set_local(K_CODES, codes)

        await self._store.transact(body)
        return code_id, key, expires

    async def lookup(self, code_id):
        """(join key, expires, cluster fingerprint) of an issued code, or None."""
        if not valid_id(code_id):
            return None
        stored = await self._store.get_local(K_CODES)
        entry = stored.get(code_id) if isinstance(stored, dict) else None
        if not isinstance(entry, dict):
            return None
        try:
            key = base64.b64decode(self._box.decrypt_text(entry["key"], _aad(code_id)))
        except (DecryptError, KeyError, TypeError, ValueError):
            return None
        if len(key) != KEY_SIZE or not isinstance(entry.get("expires"), int):
            return None
        return key, entry["expires"], entry.get("cluster")

    async def consume(self, code_id):
        """Delete the code; True only for the one caller that found it."""
        async def body(ctx):
            stored = await ctx.get_local(K_CODES)
            if not isinstance(stored, dict) or code_id not in stored:
                return False
            del stored[code_id]
            await ctx.set_local(K_CODES, stored)
            return True

        return await self._store.transact(body)

    async def clear(self):
        async def body(ctx):
            await ctx.delete_local(K_CODES)

        await self._store.transact(body)
