"""
Filtering settings (entity ``setting``/``filtering``), the protection pause
(``setting``/``protection``) and the blocking response, which belongs to the
DNS settings (``setting``/``dns``).  All synced, so a pause or a time zone
change applies on every node.
"""

from sentinel.dns import settings as dns_settings
from sentinel.filtering import schedule as sched

FILTERING = "filtering"
PROTECTION = "protection"
DNS = "dns"

FILTERING_DEFAULTS = {
    "time_zone": "",  # IANA name; "" = the host's zone
    "refresh_hours": 24,  # blocklist refresh interval
    "query_log_enabled": True,
    "query_log_days": 7,  # retention by age
    "query_log_max_rows": 1_000_000,  # retention by count
}
FILTERING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "time_zone": {"type": "string", "maxLength": 64,
                      "description": "IANA time zone for schedules; empty = the host's"},
        "refresh_hours": {"type": "number", "minimum": 0.25, "maximum": 720},
        "query_log_enabled": {"type": "boolean"},
        "query_log_days": {"type": "number", "minimum": 0.01, "maximum": 3650},
        "query_log_max_rows": {"type": "integer", "minimum": 1000, "maximum": 100_000_000},
    },
}


def filtering(data):
    """The filtering settings with defaults; tolerant of junk (sync input)."""
    out = dict(FILTERING_DEFAULTS)
    if isinstance(data, dict):
        for key, default in FILTERING_DEFAULTS.items():
            value = data.get(key)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, type(default))
            if ok:
                out[key] = value
    return out


def time_zone(settings):
    """The ZoneInfo schedules use (the host's when unset or unknown)."""
    name = settings.get("time_zone") or ""
    try:
        return sched.zone(name)
    except sched.BadSchedule:
        pass
    try:
        return sched.zone(sched.host_zone_name())
    except sched.BadSchedule:  # no time zone data at all on this machine
        return sched.fallback_zone()


def paused_until(data, now):
    """
    From the protection entity {"paused": bool, "until": epoch or None}:
    None if protection is on, else the end of the pause (float('inf') when
    paused until resumed).
    """
    if not isinstance(data, dict) or not data.get("paused"):
        return None
    until = data.get("until")
    if until is None:
        return float("inf")
    if not isinstance(until, (int, float)) or until <= now:
        return None
    return float(until)


def block_response(dns_data):
    """
    (block_mode, ttl) from the DNS settings entity, read by the DNS
    subsystem's own rules (sentinel/dns/settings.py owns that entity).
    """
    return dns_settings.blocking(dns_data)
