"""
Network information for the HA settings form and for validation: the
host's interfaces with their addresses and the IPv4 default route, as
iproute2 reports them (``ip -j addr``, ``ip -j -4 route show default``).

The sidecar runs with host networking, so it sees what keepalived will
use; it writes the result to ``netinfo.json`` for the daemon's
``GET /api/cluster/netinfo``.  Parsing is pure and tested with recorded
output; running the commands is the sidecar's business.
"""

import json

ADDR_COMMAND = ("ip", "-j", "addr", "show")
ROUTE_COMMAND = ("ip", "-j", "-4", "route", "show", "default")


class NetinfoError(ValueError):
    pass


def _load(text, what):
    try:
        value = json.loads(text or "[]")
    except ValueError as e:
        raise NetinfoError(f"cannot parse `{what}` output: {e}") from None
    if not isinstance(value, list):
        raise NetinfoError(f"unexpected `{what}` output")
    return [item for item in value if isinstance(item, dict)]


def parse_interfaces(text):
    interfaces = []
    for item in _load(text, "ip -j addr"):
        name = item.get("ifname")
        if not isinstance(name, str):
            continue
        flags = item.get("flags") or []
        addresses = []
        for info in item.get("addr_info") or ():
            if not isinstance(info, dict):
                continue
            local, prefix = info.get("local"), info.get("prefixlen")
            if info.get("family") in ("inet", "inet6") and isinstance(local, str) \
                    and isinstance(prefix, int):
                addresses.append(f"{local}/{prefix}")
        interfaces.append({
            "name": name,
            "up": "UP" in flags,
            "loopback": "LOOPBACK" in flags or item.get("link_type") == "loopback",
            "mac": item.get("address") if item.get("link_type") == "ether" else None,
            "addresses": addresses,
        })
    return interfaces


def parse_default_route(text):
    for item in _load(text, "ip -j route"):
        if item.get("dst") == "default" and isinstance(item.get("dev"), str):
            gateway = item.get("gateway")
            return {"interface": item["dev"],
                    "gateway": gateway if isinstance(gateway, str) else None}
    return None


def suggest_interface(interfaces, default_route):
    """The default route's interface, else the first up non-loopback
    interface with an IPv4 address, else None."""
    names = {i["name"] for i in interfaces}
    if default_route and default_route["interface"] in names:
        return default_route["interface"]
    for i in interfaces:
        if i["up"] and not i["loopback"] and any(":" not in a for a in i["addresses"]):
            return i["name"]
    return None


def build(addr_output, route_output, now):
    """netinfo.json content from the two commands' output."""
    interfaces = parse_interfaces(addr_output)
    route = parse_default_route(route_output)
    return {
        "detectedAt": now,
        "interfaces": interfaces,
        "defaultRoute": route,
        "suggestedInterface": suggest_interface(interfaces, route),
    }


def fresh(netinfo, now, max_age=300):
    """netinfo if it is recent enough to validate against, else None."""
    if not isinstance(netinfo, dict):
        return None
    at = netinfo.get("detectedAt")
    if not isinstance(at, (int, float)) or not (now - max_age <= at <= now + 60):
        return None
    return netinfo
