"""
UDP sockets on the reactor without twisted's per-datagram overhead, and
the socket set-up Sentinel needs that ``listenUDP``/``listenTCP`` cannot
do (options set before bind()).

- A wildcard UDP socket (every address) asks the kernel for the address
  each query arrived on (IP_PKTINFO / IPV6_RECVPKTINFO) and replies from
  that same address with sendmsg().  Stub resolvers ignore replies from
  another address, and a VIP that keepalived adds later is served at
  once, with no restart.
- A socket bound to one configured address sets IP_FREEBIND, so it can be
  bound before the address exists (a VIP on a standby node); it starts
  receiving as soon as the address is added.
"""

import errno
import socket

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
CMSG_SPACE = socket.CMSG_SPACE(32)
# Read buffer per datagram.  recvfrom(65535) costs twice as much as
# recvfrom(4096) (allocation), and no legitimate query is that large; a
# longer datagram is cut and then fails to parse (FORMERR).  Upstream
# answers are capped by the EDNS size we advertise (1232); one that fills
# the buffer is treated as truncated and retried over TCP.
RECV_SIZE = 4096
_V4_NO_IFINDEX = b"\x00\x00\x00\x00"


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _cannot(address, port, e):
    return CannotListenError(address, port, e)


def udp_socket(address, port, wildcard=False):
    """A non-blocking UDP socket bound to address:port (see module doc)."""
    family = family_of(address)
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if wildcard:
            if family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        s.bind((address, port))
    except OSError as e:
        s.close()
        raise _cannot(address, port, e) from None
    return s


def tcp_listen_socket(address, port, wildcard=False, backlog=128):
    """A listening TCP socket (dual-stack when the wildcard is "::")."""
    family = family_of(address)
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if wildcard else 1)
        if not wildcard:
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        s.bind((address, port))
        s.listen(backlog)
        s.setblocking(False)
    except OSError as e:
        s.close()
        raise _cannot(address, port, e) from None
    return s


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@implementer(IReadDescriptor)
class UdpPort:
    """
    A server UDP socket on the reactor: ``handle(data, addr, port, cmsg)``
    is called for every datagram (``port`` is this object, ``cmsg`` what to
    pass back to L{send} to reply from the arrival address).
    """

    batch = 128  # datagrams per wake-up before yielding to other sockets

    def __init__(self, reactor, sock, handle, pktinfo=False, on_send_error=None):
        self.reactor = reactor
        self.sock = sock
        self.handle = handle
        self.pktinfo = pktinfo
        self.on_send_error = on_send_error
        self._fd = sock.fileno()
        self._replies = {}  # received pktinfo -> reply ancillary data
        self.address = sock.getsockname()
        self.tcp = False
        # The fast path sends with this directly (one Python call less).
        self.sendto = None if pktinfo else sock.sendto

    def fileno(self):
        return self._fd

    def logPrefix(self):
        return "dns-udp"

    def startListening(self):
        self.reactor.addReader(self)

    def stopListening(self):
        self.reactor.removeReader(self)
        self.sock.close()
        self._fd = -1

    def connectionLost(self, reason):
        # epoll reports a pending socket error (EPOLLERR) as a lost
        # connection; for UDP that is not fatal: clear it and keep reading.
        if self._fd != -1:
            try:
                self.sock.recv(1, socket.MSG_PEEK)
            except OSError:
                pass
            self.reactor.addReader(self)

    def getHost(self):
        return self.address

    def doRead(self):
        handle = self.handle
        if self.pktinfo:
            return self._read_pktinfo(handle)
        recvfrom = self.sock.recvfrom
        for _ in range(self.batch):
            try:
                data, addr = recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            handle(data, addr, self, None)

    def _read_pktinfo(self, handle):
        recvmsg = self.sock.recvmsg
        replies = self._replies
        for _ in range(self.batch):
            try:
                data, anc, _, addr = recvmsg(RECV_SIZE, CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            cmsg = None
            if anc:
                raw = anc[0][2]
                cmsg = replies.get(raw)
                if cmsg is None:
                    cmsg = self._reply_cmsg(anc[0])
                    if len(replies) > 4096:
                        replies.clear()
                    replies[raw] = cmsg
            handle(data, addr, self, cmsg)

    @staticmethod
    def _reply_cmsg(anc):
        level, kind, raw = anc
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(raw) >= 12:
            # in_pktinfo: ifindex, spec_dst, addr.  Send from the address
            # the query was sent to; let routing choose the interface.
            return [(socket.IPPROTO_IP, IP_PKTINFO, _V4_NO_IFINDEX + raw[8:12] + raw[8:12])]
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(raw) >= 20:
            # in6_pktinfo: addr, ifindex (kept: link-local needs it).
            return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, raw[:20])]
        return None

    def local_address(self, cmsg):
        """The address a query arrived on (for logs and loop detection)."""
        if cmsg is None:
            return self.address[0]
        level, _, raw = cmsg[0]
        family = socket.AF_INET if level == socket.IPPROTO_IP else socket.AF_INET6
        return socket.inet_ntop(family, raw[4:8] if family == socket.AF_INET else raw[:16])

    def send(self, data, addr, cmsg):
        try:
            if cmsg is None:
                self.sock.sendto(data, addr)
            else:
                self.sock.sendmsg([data], cmsg, 0, addr)
        except OSError as e:
            if self.on_send_error is not None:
                self.on_send_error(e)

    def drop(self, addr):
        """Nothing to do for UDP: the client times out or retries."""


@implementer(IReadDescriptor)
class UdpClientSocket:
    """
    A connected UDP socket to one upstream, on a kernel-chosen (random)
    source port.  ``on_data(self, data)`` per datagram, ``on_error(self,
    errno)`` when the kernel reports an error (e.g. ICMP port unreachable).
    """

    batch = 128

    def __init__(self, reactor, host, port, on_data, on_error):
        family = family_of(host)
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
            s.connect((host, port))
        except OSError:
            s.close()
            raise
        self.sock = s
        self.reactor = reactor
        self.on_data = on_data
        self.on_error = on_error
        self._fd = s.fileno()
        self.local_port = s.getsockname()[1]
        self.pending = {}  # query id bytes -> attempt
        self.used = 0
        self.closed = False
        reactor.addReader(self)

    def fileno(self):
        return self._fd

    def logPrefix(self):
        return "dns-upstream-udp"

    def doRead(self):
        recv = self.sock.recv
        on_data = self.on_data
        for _ in range(self.batch):
            try:
                data = recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                self.on_error(self, e.errno)
                return
            on_data(self, data)

    def send(self, data):
        self.sock.send(data)

    def connectionLost(self, reason):
        # EPOLLERR (e.g. ICMP port unreachable) arrives as a lost
        # connection: read the error, report it, and keep the socket.
        if not self.closed:
            self.doRead()
            if not self.closed:
                self.reactor.addReader(self)

    def close(self):
        if not self.closed:
            self.closed = True
            self.reactor.removeReader(self)
            self.sock.close()
            self._fd = -1
