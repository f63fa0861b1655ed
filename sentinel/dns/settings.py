"""
DNS runtime settings: one synced store entity, kind ``setting``, key
``dns``, holding a JSON object.  Every field is optional; a missing field
has its default.  This module owns the schema, the validation and the
defaults; L{sentinel.dns.runtime} applies changes to the running server.

Filtering reads the blocking fields with L{blocking} when it compiles a
policy snapshot (blocks are decisions, not cache contents).
"""

import ipaddress

import attr

from sentinel.dns.access import DEFAULT_ALLOWED, DEFAULT_EXEMPT
from sentinel.dns.upstreamspec import UpstreamSpecError, parse_upstream

KIND, KEY = "setting", "dns"
BLOCKING_MODES = ("nxdomain", "null", "refused")

_INT = {"type": "integer"}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "upstreams": {
            "type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 300},
            "description": "Ordered upstream specs (see README); empty: the start-up "
                           "--upstream / SENTINEL_UPSTREAMS list.",
        },
        "blocking_mode": {"type": "string", "enum": list(BLOCKING_MODES)},
        "blocked_ttl": dict(_INT, minimum=0, maximum=86400),
        "cache_size": dict(_INT, minimum=0, maximum=5_000_000,
                           description="Answers kept (0 disables the cache)."),
        "cache_min_ttl": dict(_INT, minimum=0, maximum=86400),
        "cache_max_ttl": dict(_INT, minimum=0, maximum=7 * 86400),
        "cache_max_negative_ttl": dict(_INT, minimum=0, maximum=86400),
        "serve_stale": {"type": "boolean",
                        "description": "Answer from expired cache entries (TTL 30) when "
                                       "every upstream fails (RFC 8767)."},
        "allowed_networks": {
            "type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 64},
            "description": "Source networks that may query (loopback always may).",
        },
        "local_networks": {
            "type": "boolean",
            "description": "Also answer sources on the networks attached to this node "
                           "(the prefixes of its own addresses, followed at run time), "
                           "like dnsmasq's --local-service. Off: only allowed_networks "
                           "and loopback.",
        },
        "forward_private_reverse": {
            "type": "boolean",
            "description": "Forward reverse lookups of private and special ranges "
                           "(RFC 6303: 10/8, 172.16/12, 192.168/16, 100.64/10, 127/8, "
                           "169.254/16, fd00::/8, fe80::/10, ...) to the upstreams. Off: "
                           "answered NXDOMAIN here unless a rewrite answers them.",
        },
        "lan_upstreams": {
            "type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 300},
            "description": "Upstreams for private reverse lookups and single-label names "
                           "that are not forwarded, and for names under home.arpa and local "
                           "(e.g. the router, which knows the names of its DHCP clients): "
                           "those go only here, never to the public upstreams. Empty: "
                           "answered NXDOMAIN here (home.arpa and local: forwarded as "
                           "usual).",
        },
        "forward_single_label": {
            "type": "boolean",
            "description": "Forward single-label names (e.g. 'printer') to the "
                           "upstreams. Off: answered NXDOMAIN here unless a rewrite "
                           "answers them (SOA, NS, DS and DNSKEY of a top-level domain "
                           "are still forwarded).",
        },
        "rate_limit_qps": dict(_INT, minimum=0, maximum=1_000_000,
                               description="Per-client queries/s (0: no limit)."),
        "rate_limit_burst": dict(_INT, minimum=1, maximum=10_000_000),
        "rate_limit_exempt": {
            "type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 64},
        },
        "upstream_timeout_ms": dict(_INT, minimum=100, maximum=30000),
        "tcp_idle_timeout": dict(_INT, minimum=1, maximum=3600),
        "tcp_max_connections": dict(_INT, minimum=1, maximum=100000),
        "tcp_max_connections_per_client": dict(
            _INT, minimum=1, maximum=100000,
            description="TCP connections one client address may hold at once (the "
                        "rate limit's exempt networks: no limit)."),
    },
}


class SettingsError(ValueError):
    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@attr.s(frozen=True, auto_attribs=True)
class DnsSettings:
    upstreams: tuple = ()
    blocking_mode: str = "nxdomain"
    blocked_ttl: int = 10
    cache_size: int = 20000
    cache_min_ttl: int = 0
    cache_max_ttl: int = 86400
    cache_max_negative_ttl: int = 3600
    serve_stale: bool = True
    allowed_networks: tuple = DEFAULT_ALLOWED
    local_networks: bool = True
    forward_private_reverse: bool = False
    forward_single_label: bool = False
    lan_upstreams: tuple = ()
    rate_limit_qps: int = 1000
    rate_limit_burst: int = 2000
    rate_limit_exempt: tuple = DEFAULT_EXEMPT
    upstream_timeout_ms: int = 1500
    tcp_idle_timeout: int = 10
    tcp_max_connections: int = 256
    tcp_max_connections_per_client: int = 32

    def to_data(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attr.asdict(self).items()}


DEFAULTS = DnsSettings()


def _schema_errors(data):
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        field = ".".join(str(p) for p in error.absolute_path) or "(settings)"
        raise SettingsError(field, error.message)


def from_data(data):
    """Validate stored/submitted JSON; a DnsSettings or SettingsError."""
    if data is None:
        return DEFAULTS
    if not isinstance(data, dict):
        raise SettingsError("(settings)", "must be an object")
    _schema_errors(data)
    values = {}
    for field in attr.fields(DnsSettings):
        if field.name in data:
            value = data[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
    settings = attr.evolve(DEFAULTS, **values)
    for name in ("upstreams", "lan_upstreams"):
        for i, spec in enumerate(getattr(settings, name)):
            try:
                parse_upstream(spec)
            except UpstreamSpecError as e:
                raise SettingsError(f"{name}.{i}", str(e)) from None
    for name in ("allowed_networks", "rate_limit_exempt"):
        for i, net in enumerate(getattr(settings, name)):
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise SettingsError(f"{name}.{i}", f"{net!r} is not an IP network") from None
    if settings.cache_min_ttl > settings.cache_max_ttl:
        raise SettingsError("cache_min_ttl", "must not be larger than cache_max_ttl")
    if settings.rate_limit_burst < min(settings.rate_limit_qps, 1):
        raise SettingsError("rate_limit_burst", "must be at least 1")
    return settings


def merged(current, changes):
    """The stored JSON after applying a partial update (fields left out stay)."""
    data = dict(current or {})
    data.update(changes)
    return data


def blocking(data):
    """
    (blocking_mode, blocked_ttl) from the stored ``setting``/``dns`` JSON (or
    None): for filtering's snapshot compiler.  Pure; invalid or missing
    values give the defaults, never an exception.
    """
    mode, ttl = DEFAULTS.blocking_mode, DEFAULTS.blocked_ttl
    if isinstance(data, dict):
        if data.get("blocking_mode") in BLOCKING_MODES:
            mode = data["blocking_mode"]
        value = data.get("blocked_ttl")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 86400:
            ttl = value
    return mode, ttl
