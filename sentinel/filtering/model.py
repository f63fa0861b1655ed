"""
The filtering entities as stored (kinds ``client``, ``rule``,
``blocklist``, ``rewrite``): JSON schemas (API validation and OpenAPI) and
the semantic checks that normalize them.  The compiler runs the same
checks on what it reads, so a bad entity arriving by sync is skipped and
logged instead of breaking the policy.
"""

import ipaddress

from sentinel.filtering import schedule as sched
from sentinel.filtering.names import BadName, normalize
from sentinel.filtering.rulesyntax import parse_pattern

CLIENT, RULE, BLOCKLIST, REWRITE, SETTING = "client", "rule", "blocklist", "rewrite", "setting"
MODES = ("enabled", "disabled", "shadow")
_TIME = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"
MAX_ID = 2 ** 53
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_IDS = {"type": "array", "items": _ID, "maxItems": 100, "uniqueItems": True}
_TEXT = {"type": "string", "maxLength": 500}


class Invalid(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


SCHEDULE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["days", "start", "end"],
    "properties": {
        "days": {"type": "array", "minItems": 1, "uniqueItems": True,
                 "items": {"enum": list(sched.DAYS)}},
        "start": {"type": "string", "pattern": _TIME},
        "end": {"type": "string", "pattern": _TIME},
        "block": {"enum": ["all", "lists"],
                  "description": "block everything, or only the given blocklists"},
        "blocklists": _IDS,
    },
}

FIELDS = {
    CLIENT: {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "addresses": {"type": "array", "minItems": 1, "maxItems": 64,
                      "items": {"type": "string", "maxLength": 64},
                      "description": "IP addresses and/or CIDR networks"},
        "use_global_blocklists": {"type": "boolean"},
        "blocklists": _IDS,
        "kill_switch": {"type": "boolean", "description": "block everything for this client"},
        "schedules": {"type": "array", "maxItems": 20, "items": SCHEDULE_SCHEMA},
        "comment": _TEXT,
    },
    RULE: {
        "pattern": {"type": "string", "minLength": 1, "maxLength": 300,
                    "description": "example.com | *.example.com | |example.com|"},
        "action": {"enum": ["block", "allow"]},
        "client_id": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
        "enabled": {"type": "boolean"},
        "comment": _TEXT,
    },
    BLOCKLIST: {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "url": {"type": "string", "minLength": 1, "maxLength": 2048},
        "mode": {"enum": list(MODES)},
        "global": {"type": "boolean",
                   "description": "part of the selection of clients that use the global lists"},
    },
    REWRITE: {
        "domain": {"type": "string", "minLength": 1, "maxLength": 300},
        "answer": {"type": "string", "minLength": 1, "maxLength": 300,
                   "description": "IPv4 or IPv6 address, or a host name (CNAME)"},
        "ttl": {"type": "integer", "minimum": 1, "maximum": 86400},
        "enabled": {"type": "boolean"},
        "comment": _TEXT,
    },
}
REQUIRED = {CLIENT: ["name", "addresses"], RULE: ["pattern", "action"],
            BLOCKLIST: ["name", "url"], REWRITE: ["domain", "answer"]}
DEFAULTS = {
    CLIENT: {"use_global_blocklists": True, "blocklists": [], "kill_switch": False,
             "schedules": [], "comment": ""},
    RULE: {"client_id": None, "enabled": True, "comment": ""},
    BLOCKLIST: {"mode": "enabled", "global": True},
    REWRITE: {"ttl": 300, "enabled": True, "comment": ""},
}


def body_schema(kind, partial=False):
    """Request body schema: full (POST/PUT) or partial (PATCH)."""
    schema = {"type": "object", "additionalProperties": False, "properties": FIELDS[kind]}
    if not partial:
        schema["required"] = REQUIRED[kind]
    return schema


def check(kind, data):
    """Normalize one entity's data (defaults filled in); raises L{Invalid}."""
    out = dict(DEFAULTS[kind])
    out.update({k: v for k, v in data.items() if k in FIELDS[kind] or k in _KEEP.get(kind, ())})
    for field in REQUIRED[kind]:
        if field not in out:
            raise Invalid(field, f"{field} is required")
    _CHECKS[kind](out)
    return out


_KEEP = {BLOCKLIST: ("content", "status")}  # written by the refresher, not the API


def _check_client(c):
    c["name"] = c["name"].strip()
    if not c["name"]:
        raise Invalid("name", "name must not be empty")
    addresses = []
    for i, text in enumerate(c["addresses"]):
        addr = canonical_address(text, f"addresses.{i}")
        if addr not in addresses:
            addresses.append(addr)
    c["addresses"] = addresses
    c["schedules"] = [dict(s) for s in c["schedules"]]
    for i, s in enumerate(c["schedules"]):
        try:
            sched.check(s)
        except sched.BadSchedule as e:
            raise Invalid(f"schedules.{i}", str(e)) from None
        s.setdefault("block", "all")
        s.setdefault("blocklists", [])
        if s["block"] == "lists" and not s["blocklists"]:
            raise Invalid(f"schedules.{i}.blocklists", "name the blocklists to block")


def canonical_address(text, field="address"):
    """'192.168.1.5' or '10.0.0.0/24' (IPv6 too) in canonical form."""
    try:
        if "/" in text:
            net = ipaddress.ip_network(text.strip(), strict=True)
            if net.version == 6 and net.network_address.ipv4_mapped and net.prefixlen >= 96:
                net = ipaddress.ip_network(
                    f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
            if net.num_addresses == 1:
                return str(net.network_address)
            return str(net)
        addr = ipaddress.ip_address(text.strip())
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return str(addr)
    except ValueError as e:
        raise Invalid(field, f"{text!r} is not an IP address or CIDR network ({e})") from None


def _check_rule(r):
    try:
        r["pattern"] = parse_pattern(r["pattern"]).text
    except BadName as e:
        raise Invalid("pattern", str(e)) from None


def _check_blocklist(b):
    b["name"] = b["name"].strip()
    url = b["url"].strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) < 9:
        raise Invalid("url", "url must be an http:// or https:// address")
    b["url"] = url


def _check_rewrite(r):
    domain = r["domain"].strip()
    try:
        if domain.startswith("*."):
            r["domain"] = "*." + normalize(domain[2:])
        else:
            r["domain"] = normalize(domain)
    except BadName as e:
        raise Invalid("domain", str(e)) from None
    answer = r["answer"].strip()
    try:
        r["answer"] = str(ipaddress.ip_address(answer))
    except ValueError:
        try:
            r["answer"] = normalize(answer)
        except BadName:
            raise Invalid("answer", f"{answer!r} is neither an IP address nor a host name") \
                from None


def rewrite_type(answer):
    """1 (A), 28 (AAAA) or 5 (CNAME) for a checked rewrite answer."""
    try:
        return 1 if ipaddress.ip_address(answer).version == 4 else 28
    except ValueError:
        return 5


_CHECKS = {CLIENT: _check_client, RULE: _check_rule, BLOCKLIST: _check_blocklist,
           REWRITE: _check_rewrite}
