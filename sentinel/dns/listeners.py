"""
Opening the DNS listeners: UDP and TCP on every configured address, or on
every address (IPv4 and IPv6) when none is configured.

- No addresses: one IPv4 and one IPv6 wildcard UDP socket that reply from
  the address each query arrived on (pktinfo), and one dual-stack TCP
  socket.  Addresses added later (a VIP) are served at once.
- Addresses given: one UDP and one TCP socket per address, bound with
  IP_FREEBIND so an address that is not (yet) configured — the VIP on a
  standby node — can be bound now and starts working when it appears.

Bind failures raise CannotListenError, which L{ListeningService} turns into
the one-line explanation (busy port, low port without privileges).
"""

import socket

from twisted.internet.error import CannotListenError

from sentinel.dns.sockets import UdpPort, ipv6_available, tcp_listen_socket, udp_socket


def _tcp_port(reactor, sock, factory):
    try:
        return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
    finally:
        sock.close()


def listen_dns(reactor, handle, tcp_factory, addresses, port, on_send_error=None):
    """Open every listener; returns the ports (each has stopListening())."""
    ports = []
    try:
        if addresses:
            for address in addresses:
                ports.append(UdpPort(reactor, udp_socket(address, port), handle,
                                     on_send_error=on_send_error))
                ports.append(_tcp_port(reactor, tcp_listen_socket(address, port), tcp_factory))
        else:
            v6 = ipv6_available()
            ports.append(UdpPort(reactor, udp_socket("0.0.0.0", port, wildcard=True), handle,
                                 pktinfo=True, on_send_error=on_send_error))
            if v6:
                ports.append(UdpPort(reactor, udp_socket("::", port, wildcard=True), handle,
                                     pktinfo=True, on_send_error=on_send_error))
            tcp_address = "::" if v6 else "0.0.0.0"
            ports.append(_tcp_port(reactor, tcp_listen_socket(tcp_address, port, wildcard=True),
                                   tcp_factory))
    except (CannotListenError, OSError) as e:
        for p in ports:
            p.stopListening()
        if isinstance(e, CannotListenError):
            raise
        raise CannotListenError(None, port, e) from None
    for p in ports:
        if isinstance(p, UdpPort):
            p.startListening()
    return ports


def probe_target(addresses, port):
    """Where the self-probe sends its query: loopback when we listen there."""
    if not addresses:
        return ("127.0.0.1", port)
    for address in addresses:
        if address.startswith("127.") or address == "::1":
            return (address, port)
    return (addresses[0], port)


def is_local_address(address):
    """True if ``address`` is configured on this host (we could bind it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False
