"""
Join codes and leader URLs (pure).

A join code is one opaque line the admin copies from the leader to a
follower: ``SJ1.<base64url(JSON)>.<check>`` carrying the leader URL, the
cluster secret and an expiry.  The check (truncated SHA-256) turns typos
and truncated pastes into INVALID_JOIN_CODE instead of a confusing
signature error later.  Whoever holds a valid code can join the cluster:
it is shown to admins only and expires (default 1 h).
"""

import base64
import binascii
import hashlib
import ipaddress
import json
from urllib.parse import urlsplit

import attr

PREFIX = "SJ1"
DEFAULT_TTL = 3600
MAX_CODE = 4096


class JoinCodeError(Exception):
    """code: INVALID_JOIN_CODE, JOIN_CODE_EXPIRED or INVALID_LEADER_URL."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@attr.s(frozen=True, auto_attribs=True, repr=False)
class JoinCode:
    leader_url: str
    secret: bytes
    expires: float

    def __repr__(self):
        return f"<JoinCode {self.leader_url} expires={self.expires}>"


def normalize_leader_url(text):
    """
    The leader URL, normalised (no trailing slash), or JoinCodeError
    INVALID_LEADER_URL: http(s), a host, no credentials, query or fragment.
    """
    if not isinstance(text, str) or not text.strip() or len(text) > 2000:
        raise _bad_url("a URL like http://192.168.1.53:8080 is required")
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise _bad_url(str(e)) from None
    if parts.scheme not in ("http", "https"):
        raise _bad_url("use http:// or https://")
    if not parts.hostname:
        raise _bad_url("the URL has no host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _bad_url("no user, query or fragment allowed")
    if any(c.isspace() for c in text):
        raise _bad_url("no spaces allowed")
    del port
    return text.rstrip("/")


def _bad_url(why):
    return JoinCodeError("INVALID_LEADER_URL", f"Invalid leader URL: {why}.")


def url_warnings(url, local_addresses=(), vip=None):
    """
    Reasons why followers might not reach ``url`` after a failover (pure).
    local_addresses: this node's own addresses; vip: the configured VIP.
    """
    host = urlsplit(url).hostname or ""
    warnings = []
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if host.lower() == "localhost" or (ip is not None and (ip.is_loopback or ip.is_unspecified)):
        return [f"{host} is this machine's loopback address: followers cannot reach it. "
                f"Use the VIP URL, e.g. http://<VIP>:8080."]
    if vip and host == vip:
        return []
    if ip is not None and host in set(local_addresses):
        warnings.append(
            f"{host} is this node's own address, not the VIP: after a failover "
            f"followers would keep syncing from this node. Use the VIP URL.")
    elif vip is None:
        warnings.append(
            "No VIP is configured on this node yet; make sure the leader URL is the "
            "VIP URL so followers reach whichever node is leader.")
    elif ip is not None:
        warnings.append(f"{host} is not the configured VIP ({vip}); use http://{vip}:<port>.")
    return warnings


def _check(payload):
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:8]


def make(leader_url, secret, expires):
    body = json.dumps({"u": leader_url, "k": base64.b64encode(secret).decode("ascii"),
                       "e": int(expires)}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{PREFIX}.{payload}.{_check(payload)}"


def parse(code, now):
    """A L{JoinCode}, or JoinCodeError with the reason."""
    if not isinstance(code, str) or len(code) > MAX_CODE:
        raise _invalid("paste the whole code shown on the leader")
    code = "".join(code.split())  # tolerate line breaks from copying
    parts = code.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise _invalid("it does not look like a Sentinel join code")
    _, payload, check = parts
    if _check_safe(payload) != check:
        raise _invalid("it is incomplete or was mistyped")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        obj = json.loads(raw.decode("utf-8"))
        secret = base64.b64decode(obj["k"], validate=True)
        url, expires = obj["u"], obj["e"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _invalid("its contents are damaged") from None
    if len(secret) != 32 or type(expires) is not int:
        raise _invalid("its contents are damaged")
    if now > expires:
        raise JoinCodeError(
            "JOIN_CODE_EXPIRED", "The join code has expired; load a new one on the leader.")
    return JoinCode(normalize_leader_url(url), secret, float(expires))


def _check_safe(payload):
    try:
        return _check(payload)
    except UnicodeEncodeError:
        return None


def _invalid(why):
    return JoinCodeError("INVALID_JOIN_CODE", f"Invalid join code: {why}.")
