"""
Parsing of upstream resolver specifications (pure, no I/O).

Accepted forms::

    9.9.9.9            plain DNS over UDP (TCP retry when truncated), port 53
    9.9.9.9:5353       same, another port
    [2620:fe::fe]:53   IPv6 with a port
    udp://IP[:port]    explicit UDP
    tcp://IP[:port]    DNS over TCP only
    tls://NAME[:port][#IP]
                       DNS over TLS (RFC 7858), port 853. NAME is the TLS
                       server name the certificate is verified against; if
                       NAME is not an IP address, #IP gives the address to
                       connect to (no DNS lookup is needed to reach it).
    https://NAME[:port]/path[#IP]
                       DNS over HTTPS (RFC 8484), same rules for NAME and #IP.
"""

import ipaddress
from urllib.parse import urlsplit

import attr

DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853, "https": 443}


class UpstreamSpecError(ValueError):
    pass


@attr.s(frozen=True, auto_attribs=True)
class UpstreamSpec:
    scheme: str  # "udp", "tcp", "tls" or "https"
    host: str  # IP address to connect to
    port: int
    server_name: str = ""  # TLS name (tls/https); "" means verify the IP
    path: str = ""  # DoH path
    text: str = ""  # the spec as the user wrote it

    @property
    def url(self) -> str:
        """The DoH URL (https only)."""
        name = self.server_name or _bracket(self.host)
        port = "" if self.port == 443 else f":{self.port}"
        return f"https://{name}{port}{self.path}"


def _bracket(host):
    return f"[{host}]" if ":" in host else host


def _ip(text, spec):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UpstreamSpecError(
            f"{spec!r}: {text!r} is not an IP address"
        ) from None


def _port(text, spec):
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise UpstreamSpecError(f"{spec!r}: bad port {text!r}")
    return int(text)


def _split_hostport(rest, spec):
    """Split 'IP', 'IP:port', '[v6]', '[v6]:port' or a bare IPv6."""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise UpstreamSpecError(f"{spec!r}: missing ']'")
        host, tail = rest[1:end], rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise UpstreamSpecError(f"{spec!r}: junk after ']'")
        return host, tail[1:] if tail else None
    if rest.count(":") == 1:
        host, port = rest.split(":")
        return host, port
    return rest, None  # bare IPv4, bare IPv6 or a name


def parse_upstream(spec: str) -> UpstreamSpec:
    text = spec.strip()
    if not text:
        raise UpstreamSpecError("empty upstream")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "udp", text
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UpstreamSpecError(
            f"{spec!r}: unknown scheme {scheme!r} (use udp, tcp, tls or https)"
        )
    if scheme == "https":
        return _parse_https(text, spec)
    rest, _, pinned = rest.partition("#")
    host, port = _split_hostport(rest.rstrip("/"), spec)
    port = _port(port, spec) if port is not None else DEFAULT_PORTS[scheme]
    if scheme in ("udp", "tcp"):
        if pinned:
            raise UpstreamSpecError(f"{spec!r}: '#' is only for tls:// and https://")
        return UpstreamSpec(scheme, _ip(host, spec), port, text=text)
    return _with_name(scheme, host, port, pinned, "", text, spec)


def _with_name(scheme, host, port, pinned, path, text, spec):
    try:
        ip = str(ipaddress.ip_address(host))
        name = ""
    except ValueError:
        if not pinned:
            raise UpstreamSpecError(
                f"{spec!r}: {host!r} is a name; add '#IP' with the address to "
                f"connect to (e.g. tls://dns.quad9.net#9.9.9.9)"
            ) from None
        ip, name = _ip(pinned, spec), host.lower()
    else:
        if pinned:
            ip = _ip(pinned, spec)
    return UpstreamSpec(scheme, ip, port, name, path, text)


def _parse_https(text, spec):
    url, _, pinned = text.partition("#")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UpstreamSpecError(f"{spec!r}: {e}") from None
    if not parts.hostname:
        raise UpstreamSpecError(f"{spec!r}: missing host")
    path = parts.path or "/dns-query"
    if parts.query:
        path += "?" + parts.query
    return _with_name(
        "https", parts.hostname, port or 443, pinned, path, text, spec
    )


DEFAULT_UPSTREAMS = (
    "tls://dns.quad9.net#9.9.9.9",
    "tls://dns.quad9.net#149.112.112.112",
)
