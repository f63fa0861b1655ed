"""
Bearer secrets: session tokens (the cookie value) and API tokens.

Both are 256-bit random values; the store keeps only their SHA-256 (a fast
hash is right for high-entropy secrets: there is nothing to brute-force).
An API token reads ``snt_<id>_<secret>`` so it can be looked up by id and
then compared in constant time; ``snt_`` makes leaked tokens greppable.
"""

import hashlib
import hmac
import re
import secrets

TOKEN_PREFIX = "snt_"
_API_TOKEN = re.compile(r"^snt_([1-9][0-9]{0,17})_([A-Za-z0-9_-]{43})$")
_SESSION = re.compile(r"^[A-Za-z0-9_-]{43}$")


def new_secret():
    """43 URL-safe characters (32 random bytes)."""
    return secrets.token_urlsafe(32)


def digest(secret):
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(secret, expected_digest):
    return hmac.compare_digest(digest(secret), expected_digest or "")


def api_token(token_id, secret):
    return f"{TOKEN_PREFIX}{token_id}_{secret}"


def parse_api_token(text):
    """(id, secret) or None."""
    m = _API_TOKEN.match(text or "")
    return (m.group(1), m.group(2)) if m else None


def valid_session_token(text):
    return bool(text) and bool(_SESSION.match(text))
