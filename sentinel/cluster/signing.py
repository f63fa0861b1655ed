"""
Authentication of sync traffic (pure; the clock is a parameter).

Both directions are signed with HMAC-SHA256 under a key derived from the
cluster secret (HKDF, one key per purpose):

- a request over its timestamp, nonce, sender node id, method, path with
  query and raw body; the leader accepts it within +-60 s of its own clock
  and only once (the nonce is remembered in the store, so a replay fails
  across a leader restart too);
- a response over its timestamp, the nonce of the request it answers (so
  it cannot be replayed to answer another request), status and raw body.

Fields are joined with newlines; every field but the body (which is last)
is checked to contain none, so the message is unambiguous.
"""

import hashlib
import hmac
import os
import re

import attr
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"sentinel-sync-v1"
SKEW = 60  # seconds either way
NONCE_TTL = 2 * SKEW + 5  # how long the leader must remember a nonce
SECRET_SIZE = 32

H_TIMESTAMP = "X-Sentinel-Timestamp"
H_NONCE = "X-Sentinel-Nonce"
H_NODE = "X-Sentinel-Node"
H_SIGNATURE = "X-Sentinel-Signature"

_NONCE = re.compile(r"^[0-9a-f]{32}$")
_NODE = re.compile(r"^[0-9a-f]{8,64}$")
_TS = re.compile(r"^[0-9]{1,12}$")
_SIG = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(Exception):
    """
    A signature check failed.  code is what status pages show:
    BAD_SIGNATURE, EXPIRED (clock skew / stale), REPLAYED, UNSIGNED.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def new_secret() -> bytes:
    return os.urandom(SECRET_SIZE)


def new_nonce() -> str:
    return os.urandom(16).hex()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"sentinel-cluster",
        info=b"sentinel/sync/" + purpose,
    ).derive(secret)


@attr.s(frozen=True, repr=False)
class ClusterKeys:
    """The keys derived from one cluster secret."""

    mac = attr.ib()  # HMAC-SHA256 key for requests and responses
    wire = attr.ib()  # AES-256-GCM key for the sync payload

    @classmethod
    def from_secret(cls, secret: bytes):
        if not isinstance(secret, bytes) or len(secret) != SECRET_SIZE:
            raise ValueError("the cluster secret must be 32 bytes")
        return cls(_derive(secret, b"hmac/v1"), _derive(secret, b"aead/v1"))

    def __repr__(self):
        return "<ClusterKeys>"  # never show key material


def _mac(key, fields, body):
    msg = b"\n".join([VERSION] + [f.encode("ascii") for f in fields] + [body])
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _check_path(path_qs):
    if not path_qs.startswith("/api/") or any(c in path_qs for c in "\r\n\x00"):
        raise ValueError(f"not a signable API path: {path_qs!r}")
    path_qs.encode("ascii")  # URLs we sign are ASCII (quoted) by construction


def sign_request(keys, node_id, method, path_qs, body, now, nonce=None):
    """Headers (dict str->str) that authenticate one request."""
    _check_path(path_qs)
    nonce = nonce or new_nonce()
    ts = str(int(now))
    sig = _mac(keys.mac, ["req", ts, nonce, node_id, method.upper(), path_qs], body)
    return {H_TIMESTAMP: ts, H_NONCE: nonce, H_NODE: node_id, H_SIGNATURE: sig}


@attr.s(frozen=True, auto_attribs=True)
class SignedRequest:
    node_id: str
    nonce: str
    timestamp: int


def verify_request(keys, headers, method, path_qs, body, now):
    """
    Check a request's signature and freshness; returns L{SignedRequest}.
    headers: a mapping name -> str (case as in H_*) or None.  Replay is the
    caller's part (remember the nonce until ``timestamp + NONCE_TTL``).
    """
    ts, nonce = headers.get(H_TIMESTAMP), headers.get(H_NONCE)
    node, sig = headers.get(H_NODE), headers.get(H_SIGNATURE)
    if not (ts and nonce and node and sig):
        raise SignatureError("UNSIGNED", "The request is not signed.")
    if not (_TS.match(ts) and _NONCE.match(nonce) and _NODE.match(node) and _SIG.match(sig)):
        raise SignatureError("BAD_SIGNATURE", "Malformed signature headers.")
    try:
        _check_path(path_qs)
    except (ValueError, UnicodeEncodeError):
        raise SignatureError("BAD_SIGNATURE", "Unsignable request path.") from None
    want = _mac(keys.mac, ["req", ts, nonce, node, method.upper(), path_qs], body)
    if not hmac.compare_digest(want, sig):
        raise SignatureError(
            "BAD_SIGNATURE",
            "Bad signature: the nodes do not share the same cluster secret "
            "(join again with a fresh join code).",
        )
    _check_skew(int(ts), now)
    return SignedRequest(node, nonce, int(ts))


def _check_skew(ts, now):
    if abs(now - ts) > SKEW:
        raise SignatureError(
            "EXPIRED",
            f"Timestamp is {now - ts:+.0f} s off this node's clock (allowed: "
            f"+-{SKEW} s); check NTP on both nodes.",
        )


def sign_response(keys, request_nonce, status, body, now):
    ts = str(int(now))
    return {
        H_TIMESTAMP: ts,
        H_SIGNATURE: _mac(keys.mac, ["resp", ts, request_nonce, str(int(status))], body),
    }


def verify_response(keys, headers, request_nonce, status, body, now):
    """Check that the leader (holder of the secret) sent this answer now."""
    ts, sig = headers.get(H_TIMESTAMP), headers.get(H_SIGNATURE)
    if not (ts and sig):
        raise SignatureError("UNSIGNED", "The leader's answer is not signed.")
    if not (_TS.match(ts) and _SIG.match(sig)):
        raise SignatureError("BAD_SIGNATURE", "Malformed signature on the leader's answer.")
    want = _mac(keys.mac, ["resp", ts, request_nonce, str(int(status))], body)
    if not hmac.compare_digest(want, sig):
        raise SignatureError(
            "BAD_SIGNATURE",
            "The leader's answer has a bad signature (different cluster secret, "
            "or something between the nodes altered it).",
        )
    _check_skew(int(ts), now)
