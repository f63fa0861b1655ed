"""
The HA (VIP / keepalived) settings of one node: the value object, and the
validation every input goes through -- API bodies and the config.json
the keepalived sidecar reads alike.

Values are restricted to what keepalived needs and nothing more (IPv4
addresses, Linux interface names, small integers, a short password from a
safe alphabet), so rendering them can never change the structure of
keepalived.conf.  Each problem is reported as an L{HaError} with a
specific code and the field it concerns.

JSON field names (API and config.json): enabled, vip, interface,
virtualRouterId, priority, advertInterval, mode, unicastPeers, sourceIp
(and the write-only password).
"""

import ipaddress
import re

import attr

MODES = ("multicast", "unicast")
DEFAULT_VRID = 53
DEFAULT_PRIORITY = 100
DEFAULT_ADVERT = 1
MAX_PEERS = 16
PASSWORD_MAX = 8  # VRRPv2 simple authentication carries 8 bytes

# Linux interface names are at most 15 bytes; we accept the usual ones.
INTERFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
# Printable ASCII without whitespace and without anything keepalived's
# parser treats specially (quotes, comments, blocks, escapes, $ and ~
# substitutions, @ conditionals).
PASSWORD = re.compile(r"^[A-Za-z0-9%&()*+,\-./:;<=>?^_|\[\]]{1,8}$")
PASSWORD_ALPHABET = "letters, digits and % & ( ) * + , - . / : ; < = > ? ^ _ | [ ]"


class HaError(ValueError):
    """One invalid HA value: code (e.g. HA_INVALID_VIP), field, message."""

    def __init__(self, code, field, message):
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class HaSettings:
    enabled: bool = False
    vip: str = None  # "198.18.0.53/24"
    interface: str = None
    vrid: int = DEFAULT_VRID
    priority: int = DEFAULT_PRIORITY
    advert_interval: int = DEFAULT_ADVERT
    mode: str = "multicast"
    unicast_peers: tuple = ()
    source_ip: str = None

    @property
    def vip_address(self):
        return self.vip.split("/")[0] if self.vip else None

    def to_json(self):
        return {
            "enabled": self.enabled,
            "vip": self.vip,
            "interface": self.interface,
            "virtualRouterId": self.vrid,
            "priority": self.priority,
            "advertInterval": self.advert_interval,
            "mode": self.mode,
            "unicastPeers": list(self.unicast_peers),
            "sourceIp": self.source_ip,
        }


FIELDS = ("enabled", "vip", "interface", "virtualRouterId", "priority",
          "advertInterval", "mode", "unicastPeers", "sourceIp")


def _int(data, field, default, low, high, code, what):
    value = data.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HaError(code, field, f"{what} must be a whole number from {low} to {high}.")
    return value


def _ipv4(text, field, code, what):
    if not isinstance(text, str) or len(text) > 64:
        raise HaError(code, field, f"{what} must be an IPv4 address such as 192.168.1.53.")
    try:
        address = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise HaError(code, field,
                      f"{what} {text!r} is not an IPv4 address (VRRP v2 is IPv4 only).") from None
    if (address.is_unspecified or address.is_loopback or address.is_multicast
            or address.is_reserved or address.is_link_local):
        raise HaError(code, field, f"{what} {address} cannot be used on a LAN.")
    return address


def check_vip(text):
    """'192.168.1.53' or '192.168.1.53/24' -> canonical 'a.b.c.d/p'."""
    field, code = "vip", "HA_INVALID_VIP"
    if not isinstance(text, str) or not text.strip():
        raise HaError(code, field, "The VIP must be an IPv4 address, e.g. 192.168.1.53.")
    address, slash, prefix = text.strip().partition("/")
    ip = _ipv4(address, field, code, "The VIP")
    if slash:
        if not (prefix.isascii() and prefix.isdigit()) or not 8 <= int(prefix) <= 32:
            raise HaError(code, field, f"The VIP prefix /{prefix} must be from /8 to /32.")
        bits = int(prefix)
    else:
        bits = 32
    iface = ipaddress.IPv4Interface(f"{ip}/{bits}")
    if bits < 31 and ip in (iface.network.network_address, iface.network.broadcast_address):
        raise HaError(code, field,
                      f"{ip} is the network or broadcast address of {iface.network}.")
    return f"{ip}/{bits}"


def check_interface(name):
    if not isinstance(name, str) or not INTERFACE.fullmatch(name) or name in (".", ".."):
        raise HaError("HA_INVALID_INTERFACE", "interface",
                      "The interface must be a network interface name such as eth0 "
                      "(1-15 letters, digits, '_', '.', '-').")
    return name


def check_password(value):
    if not isinstance(value, str) or not value:
        raise HaError("HA_INVALID_PASSWORD", "password", "The VRRP password must not be empty.")
    if len(value) > PASSWORD_MAX:
        raise HaError("HA_INVALID_PASSWORD", "password",
                      f"The VRRP password can be at most {PASSWORD_MAX} characters "
                      f"(VRRP only carries 8; longer ones would be cut silently).")
    if not PASSWORD.fullmatch(value):
        raise HaError("HA_INVALID_PASSWORD", "password",
                      f"The VRRP password may only contain {PASSWORD_ALPHABET}.")
    return value


def check_peers(value, vip_address):
    field, code = "unicastPeers", "HA_INVALID_PEER"
    if value is None:
        return ()
    if not isinstance(value, list):
        raise HaError(code, field, "unicastPeers must be a list of IPv4 addresses.")
    if len(value) > MAX_PEERS:
        raise HaError(code, field, f"At most {MAX_PEERS} unicast peers.")
    peers = []
    for item in value:
        ip = str(_ipv4(item, field, code, "Unicast peer"))
        if ip == vip_address:
            raise HaError(code, field, f"The VIP {ip} cannot be a unicast peer; "
                                       f"list the other nodes' own addresses.")
        if ip in peers:
            raise HaError(code, field, f"Unicast peer {ip} is listed twice.")
        peers.append(ip)
    return tuple(peers)


def parse_settings(data, *, password_known, netinfo=None):
    """
    Validate a settings dict (API/config.json field names) and return
    (HaSettings, warnings).  password_known: a VRRP password is (or will
    be) stored.  netinfo: the sidecar's view of this host's interfaces
    (see L{sentinel.ha.netinfo}), used for cross-checks when present.
    """
    if not isinstance(data, dict):
        raise HaError("HA_INVALID_CONFIG", "(body)", "The HA settings must be a JSON object.")
    unknown = sorted(set(data) - set(FIELDS) - {"password"})
    if unknown:
        raise HaError("HA_UNKNOWN_FIELD", unknown[0], f"Unknown field {unknown[0]!r}.")
    warnings = []
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        raise HaError("HA_INVALID_ENABLED", "enabled", "enabled must be true or false.")

    vip = data.get("vip")
    vip = check_vip(vip) if vip not in (None, "") else None
    vip_address = vip.split("/")[0] if vip else None

    interface = data.get("interface")
    interface = check_interface(interface) if interface not in (None, "") else None
    if interface is None and enabled and netinfo and netinfo.get("suggestedInterface"):
        interface = check_interface(netinfo["suggestedInterface"])
        warnings.append(f"interface not given: using {interface}, which carries the "
                        f"default route")

    vrid = _int(data, "virtualRouterId", DEFAULT_VRID, 1, 255, "HA_INVALID_VRID",
                "The virtual router id")
    priority = _int(data, "priority", DEFAULT_PRIORITY, 1, 254, "HA_INVALID_PRIORITY",
                    "The priority")
    advert = _int(data, "advertInterval", DEFAULT_ADVERT, 1, 255, "HA_INVALID_ADVERT_INTERVAL",
                  "The advert interval (seconds)")

    mode = data.get("mode") or "multicast"
    if mode not in MODES:
        raise HaError("HA_INVALID_MODE", "mode", "mode must be 'multicast' or 'unicast'.")
    peers = check_peers(data.get("unicastPeers"), vip_address)

    source = data.get("sourceIp")
    if source not in (None, ""):
        source = str(_ipv4(source, "sourceIp", "HA_INVALID_SOURCE_IP", "The source IP"))
        if source == vip_address:
            raise HaError("HA_INVALID_SOURCE_IP", "sourceIp",
                          "The source IP must be this node's own address, not the VIP.")
    else:
        source = None

    if enabled:
        if vip is None:
            raise HaError("HA_VIP_REQUIRED", "vip", "Set the VIP to enable failover.")
        if interface is None:
            raise HaError("HA_INTERFACE_REQUIRED", "interface",
                          "Set the LAN interface to enable failover.")
        if not password_known:
            raise HaError("HA_PASSWORD_REQUIRED", "password",
                          "Set the shared VRRP password (the same on every node).")
        if mode == "unicast" and not peers:
            raise HaError("HA_PEERS_REQUIRED", "unicastPeers",
                          "Unicast mode needs the other nodes' addresses in unicastPeers.")
    settings = HaSettings(
        enabled=enabled, vip=vip, interface=interface, vrid=vrid, priority=priority,
        advert_interval=advert, mode=mode, unicast_peers=peers, source_ip=source,
    )
    if netinfo and enabled:
        warnings.extend(cross_check(settings, netinfo))
    return settings, warnings


def cross_check(settings, netinfo):
    """Checks against the detected interfaces; errors for the impossible,
    warnings for the merely unusual."""
    interfaces = {i.get("name"): i for i in netinfo.get("interfaces") or ()}
    if not interfaces:
        return []
    iface = interfaces.get(settings.interface)
    if iface is None:
        raise HaError("HA_UNKNOWN_INTERFACE", "interface",
                      f"This node has no interface {settings.interface!r} "
                      f"(found: {', '.join(sorted(n for n in interfaces if n))}).")
    networks = []
    own = set()
    for text in iface.get("addresses") or ():
        try:
            net = ipaddress.ip_interface(text)
        except ValueError:
            continue
        if net.version == 4:
            networks.append(net.network)
            own.add(str(net.ip))
    if settings.source_ip and settings.source_ip not in own:
        raise HaError("HA_INVALID_SOURCE_IP", "sourceIp",
                      f"{settings.source_ip} is not an address of {settings.interface}.")
    warnings = []
    vip = ipaddress.IPv4Address(settings.vip_address)
    if networks and not any(vip in n for n in networks if n.prefixlen < 32):
        warnings.append(f"the VIP {vip} is outside the subnets of {settings.interface} "
                        f"({', '.join(str(n) for n in networks)}); clients may not reach it")
    for peer in settings.unicast_peers:
        if peer in own:
            warnings.append(f"unicast peer {peer} is this node's own address")
    return warnings
