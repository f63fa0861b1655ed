"""
Which names the admin API and web UI answer to (the Host header), against
DNS rebinding: a page on an attacker's name that later resolves to this
node's address is, for the browser, the same origin as the attacker's own
site, so it passes the cross-site check and could call endpoints that need
no login (first-run setup, login attempts) and read the answers.  Such a
name is always a public one the attacker registered, so Sentinel answers
only to names that cannot be:

- IP addresses (IPv4, bracketed IPv6), e.g. the VIP: ``http://192.168.1.53:8080``;
- ``localhost`` and names under ``.localhost``;
- single-label names (``http://sentinel:8080``) and names under suffixes
  that public DNS never delegates (L{PRIVATE_SUFFIXES}: ``.lan``, ``.home``,
  ``.home.arpa``, ``.local``, ``.internal``, ...);
- this machine's host name and fully qualified name;
- the names given with ``--http-hosts`` (a leading dot allows a whole
  suffix; ``*`` turns the check off).

Requests with a Host header that is none of these get 421 (see
L{refusal}); the signed sync endpoints are exempt (a signature cannot be
forged from a browser, and followers may reach the leader by any name).
"""

import ipaddress
import re

PRIVATE_SUFFIXES = (
    "localhost", "local", "lan", "home", "home.arpa", "internal", "localdomain",
    "intranet", "corp", "private", "test",
)
EXEMPT_PREFIXES = (b"/api/cluster/sync/",)
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})$")


def split_host(header):
    """The host part of a Host header, lower-case, without port or final dot;
    None if it is not a valid host[:port]."""
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[: end + 1], text[end + 1:]
    else:
        host, _, port = text.partition(":")
        rest = ":" + port if _ else ""
    if rest and not (rest.startswith(":") and rest[1:].isascii()
                 and rest[1:].isdigit() and len(rest) <= 6):
        return None
    return host.rstrip(".") if not host.startswith("[") else host


def _is_ip(host):
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host.startswith("[") != host.endswith("]"):
        return False
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        return False
    return host.startswith("[") == (ip.version == 6)


class HostPolicy:
    """
    ``names``: extra allowed names (``.suffix`` entries allow a suffix,
    ``*`` allows everything); ``own_names``: this machine's names.
    """

    def __init__(self, names=(), own_names=()):
        names = [n.strip().lower().rstrip(".") for n in names if n.strip()]
        self.allow_all = "*" in names
        self.names = frozenset(n for n in list(names) + [o.lower().rstrip(".")
                                                         for o in own_names if o]
                               if not n.startswith("."))
        self.suffixes = tuple(n.lstrip(".") for n in names if n.startswith(".")) + \
            PRIVATE_SUFFIXES

    def allowed(self, header):
        if self.allow_all or header is None:
            return True  # no Host header: not a browser (they always send one)
        host = split_host(header)
        if not host:
            return False
        if _is_ip(host):
            return True
        labels = host.split(".")
        if not all(_LABEL.match(label) for label in labels):
            return False
        if len(labels) == 1 or host in self.names:
            return True
        return any(host.endswith("." + s) or host == s for s in self.suffixes)

    def exempt(self, path):
        return path.startswith(EXEMPT_PREFIXES)


def refusal(host_header):
    shown = (host_header or "")[:100]
    return (f"This Sentinel does not answer to the name {shown!r} (protection against DNS "
            f"rebinding). Use its IP address, or allow the name with --http-hosts / "
            f"SENTINEL_HTTP_HOSTS.")
