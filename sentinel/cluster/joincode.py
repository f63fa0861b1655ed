"""
Join codes and leader URLs (pure).

A join code is one opaque line the admin copies from the leader to a
follower: ``SJ2.<base64url(JSON)>.<check>`` carrying the leader URL, the
id of the code, a random join key and an expiry -- never the cluster
secret: the follower trades the join key for it with the leader, which
accepts each code once and only until it expires (L{sentinel.cluster.joining}).
The check (truncated SHA-256) turns typos and truncated pastes into
INVALID_JOIN_CODE instead of a confusing signature error later.  The code
is shown to admins only.
"""

import base64
import binascii
import hashlib
import ipaddress
import json
import re
from urllib.parse import urlsplit

import attr

PREFIX = "SJ2"
OLD_PREFIXES = ("SJ1",)
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
    code_id: str
    key: bytes  # the join key (not the cluster secret)
    expires: float

    def __repr__(self):
        return f"<JoinCode {self.leader_url} expires={self.expires}>"


def _leader_url_grammar():
    """http(s)://HOST[:PORT][/] (RFC 3986 IPv4/IPv6 literals, ports 0-65535)."""
    octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ipv4 = rf"{octet}(?:\.{octet}){{3}}"
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = rf"(?:{h16}:{h16}|{ipv4})"

    def head(n):  # [ *n( h16 ":" ) h16 ]
        return rf"(?:(?:{h16}:){{0,{n}}}{h16})?"

    ipv6 = "|".join([
        rf"(?:{h16}:){{6}}{ls32}", rf"::(?:{h16}:){{5}}{ls32}",
        rf"{head(0)}::(?:{h16}:){{4}}{ls32}", rf"{head(1)}::(?:{h16}:){{3}}{ls32}",
        rf"{head(2)}::(?:{h16}:){{2}}{ls32}", rf"{head(3)}::{h16}:{ls32}",
        rf"{head(4)}::{ls32}", rf"{head(5)}::{h16}", rf"{head(6)}::",
    ])
    host = rf"(?:[A-Za-z0-9._~-]+|\[(?:{ipv6})\])"
    port = (r"(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
            r"|6553[0-5])")
    return rf"[Hh][Tt][Tt][Pp][Ss]?://{host}(?::{port})?/?"


LEADER_URL = _leader_url_grammar()
# What the API's JSON schema says (surrounding whitespace is tolerated), and
# exactly what normalize_leader_url accepts.
LEADER_URL_PATTERN = rf"^\s*{LEADER_URL}\s*$"
LEADER_URL_RULE = ("an http(s) URL with a host and an optional port, nothing else "
                   "(e.g. http://192.168.1.53:8080)")
MAX_URL = 2000
_LEADER_URL_RE = re.compile(rf"\s*({LEADER_URL})\s*")


def normalize_leader_url(text):
    """
    The leader URL, normalised (lowercase scheme, no trailing slash), or
    JoinCodeError INVALID_LEADER_URL: only http(s)://HOST[:PORT] (the API
    ends paths at /api/..., and signatures cover the path from there).
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_URL:
        raise _bad_url("a URL like http://192.168.1.53:8080 is required")
    m = _LEADER_URL_RE.fullmatch(text)
    if m is None:
        raise _bad_url(_why(text.strip()))
    scheme, rest = m.group(1).rstrip("/").split("://", 1)
    url = f"{scheme.lower()}://{rest}"
    urlsplit(url).port  # the grammar guarantees this parses (tested)
    return url


def _why(text):
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "use http:// or https://"
    if any(c.isspace() for c in text):
        return "no spaces allowed"
    if any(c in rest for c in "@?#"):
        return "no user, query or fragment allowed"
    if "/" in rest.rstrip("/"):
        return "no path allowed: just http(s)://HOST[:PORT]"
    if not rest.strip("/"):
        return "the URL has no host"
    return "expected http(s)://HOST[:PORT] with a valid host and port (0-65535)"


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


def make(leader_url, code_id, key, expires):
    body = json.dumps({"u": leader_url, "i": code_id,
                       "k": base64.b64encode(key).decode("ascii"),
                       "e": int(expires)}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{PREFIX}.{payload}.{_check(payload)}"


def parse(code, now):
    """A L{JoinCode}, or JoinCodeError with the reason."""
    if not isinstance(code, str) or len(code) > MAX_CODE:
        raise _invalid("paste the whole code shown on the leader")
    code = "".join(code.split())  # tolerate line breaks from copying
    parts = code.split(".")
    if len(parts) == 3 and parts[0] in OLD_PREFIXES:
        raise _invalid("it comes from an older Sentinel version; load a new one on the leader")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise _invalid("it does not look like a Sentinel join code")
    _, payload, check = parts
    if _check_safe(payload) != check:
        raise _invalid("it is incomplete or was mistyped")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        obj = json.loads(raw.decode("utf-8"))
        key = base64.b64decode(obj["k"], validate=True)
        url, expires, code_id = obj["u"], obj["e"], obj["i"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise _invalid("its contents are damaged") from None
    if len(key) != 32 or type(expires) is not int or not isinstance(code_id, str) \
            or not re.fullmatch(r"[0-9a-f]{32}", code_id):
        raise _invalid("its contents are damaged")
    if now > expires:
        raise JoinCodeError(
            "JOIN_CODE_EXPIRED", "The join code has expired; load a new one on the leader.")
    return JoinCode(normalize_leader_url(url), code_id, key, float(expires))


def _check_safe(payload):
    try:
        return _check(payload)
    except UnicodeEncodeError:
        return None


def _invalid(why):
    return JoinCodeError("INVALID_JOIN_CODE", f"Invalid join code: {why}.")
