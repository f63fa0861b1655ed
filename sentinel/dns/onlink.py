"""
The networks directly attached to this node (the prefixes of its own
addresses), followed at run time, for the default access list: like
dnsmasq's ``--local-service``, a client on the same link is answered even
when its addresses are global (an IPv6 GUA from SLAAC, a public IPv4 range
used on an office LAN).

- L{parse_addresses} (pure): an rtnetlink ``RTM_GETADDR`` dump, as bytes,
  -> ``[(address text, prefix length)]``.
- L{networks} (pure): those -> the attached networks (host bits cleared,
  de-duplicated, loopback left out: it is always allowed).  An address
  with a /32 or /128 prefix (a VIP, a DHCPv6 address) covers only itself.
- L{read_addresses} (I/O, Linux): asks the kernel for the dump over a
  netlink socket (no subprocess; answered at once, in the calling
  thread).
- L{OnLinkWatcher}: reads at start and every ``interval`` seconds (the
  clock is injected) and hands changed networks to ``apply``.  A failed
  read is logged once and the last known networks stay.
"""

import ipaddress
import socket
import struct

from twisted.logger import Logger

from sentinel.periodic import looping_call

log = Logger()

INTERVAL = 30.0

NETLINK_ROUTE = 0
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
_RTA = struct.Struct("=HH")  # length, type
_FAMILIES = {socket.AF_INET: (socket.AF_INET, 4), socket.AF_INET6: (socket.AF_INET6, 16)}


class NetlinkError(OSError):
    pass


def _align(n):
    return (n + 3) & ~3


def parse_addresses(data):
    """
    ``[(address, prefixlen)]`` from the messages of an ``RTM_GETADDR`` dump
    (several datagrams concatenated are fine).  For a point-to-point
    address ``IFA_LOCAL`` (ours) wins over ``IFA_ADDRESS`` (the peer).
    Raises L{NetlinkError} for an ``NLMSG_ERROR`` message; anything cut
    short or of another family is skipped.
    """
    out = []
    offset, end = 0, len(data)
    while offset + _NLMSG.size <= end:
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > end:
            break
        body = offset + _NLMSG.size
        if kind == NLMSG_DONE:
            break
        if kind == NLMSG_ERROR:
            (errno,) = struct.unpack_from("=i", data, body) if length >= _NLMSG.size + 4 \
                else (0,)
            if errno:
                raise NetlinkError(-errno, f"netlink: error {-errno} reading addresses")
        elif kind == RTM_NEWADDR and length >= _NLMSG.size + _IFADDRMSG.size:
            family, prefixlen, _, _, _ = _IFADDRMSG.unpack_from(data, body)
            found = {}
            attr = body + _IFADDRMSG.size
            stop = offset + length
            while attr + _RTA.size <= stop:
                rta_len, rta_type = _RTA.unpack_from(data, attr)
                if rta_len < _RTA.size or attr + rta_len > stop:
                    break
                found[rta_type] = data[attr + _RTA.size:attr + rta_len]
                attr += _align(rta_len)
            raw = found.get(IFA_LOCAL, found.get(IFA_ADDRESS))
            if family in _FAMILIES and raw is not None and len(raw) == _FAMILIES[family][1]:
                out.append((socket.inet_ntop(family, raw), prefixlen))
        offset += _align(length)
    return out


def networks(addresses):
    """
    The attached networks, sorted (IPv4 first): each address's prefix with
    the host bits cleared.  Loopback and malformed entries are left out.
    """
    nets = set()
    for address, prefixlen in addresses:
        try:
            net = ipaddress.ip_network(f"{address.split('%')[0]}/{prefixlen}", strict=False)
        except ValueError:
            continue
        if net.is_loopback:
            continue
        nets.add(net)
    return tuple(sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen)))


def read_addresses(sequence=1):
    """This network namespace's addresses, ``[(address, prefixlen)]`` (Linux)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.settimeout(2.0)  # the kernel answers a dump at once; never hang on it
        sock.bind((0, 0))
        request = _NLMSG.pack(_NLMSG.size + _IFADDRMSG.size, RTM_GETADDR,
                              NLM_F_REQUEST | NLM_F_DUMP, sequence, 0) + \
            _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.sendto(request, (0, 0))
        chunks = []
        while True:
            data = sock.recv(65536)
            chunks.append(data)
            if _done(data):
                break
        return parse_addresses(b"".join(chunks))
    finally:
        sock.close()


def _done(data):
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if kind in (NLMSG_DONE, NLMSG_ERROR) or length < _NLMSG.size:
            return True
        offset += _align(length)
    return False


class OnLinkWatcher:
    """
    ``apply(networks)`` is called with the attached networks at start and
    whenever they change (read every ``interval`` seconds on ``clock``).
    """

    def __init__(self, clock, apply, read=read_addresses, interval=INTERVAL):
        self.clock = clock
        self.apply = apply
        self.read = read
        self.interval = interval
        self.current = None
        self._failing = False
        self._loop = None

    def start(self):
        loop = self._loop = looping_call("reading the on-link networks", self.refresh, self.clock)
        loop.start(self.interval, now=True)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def refresh(self):
        try:
            nets = networks(self.read())
        except Exception as e:
            if not self._failing:
                log.warn("cannot read this node's addresses ({e}); on-link networks stay "
                         "{nets}", e=e, nets=[str(n) for n in self.current or ()])
            self._failing = True
            return
        self._failing = False
        if nets != self.current:
            self.apply(nets)  # if this fails, the next read applies them again
            self.current = nets
            log.info("on-link networks answered by DNS: {nets}", nets=[str(n) for n in nets])
