"""
Listening to the other nodes' VRRP adverts (IP protocol 112) on a raw
socket, so the sidecar knows who else is alive and holding the VIP:

- the readiness check lets a node that is not ready stay out of the
  election only while some other node is advertising (so a lone node with
  a stale sync still serves DNS rather than nobody);
- ``GET /api/cluster/peer-status`` lists the peers seen;
- an advert for our virtual router id with a different password is logged
  once per peer: the classic "both nodes are MASTER" misconfiguration.

Parsing and the peer table are pure (tested with crafted packets); the
socket reader is a thin FileDescriptor.
"""

import ipaddress
import socket
import struct

import attr
from twisted.internet.abstract import FileDescriptor
from twisted.logger import Logger

from sentinel.ha import files

log = Logger()
VRRP_PROTO = 112


@attr.s(frozen=True, auto_attribs=True)
class Advert:
    source: str
    version: int
    vrid: int
    priority: int
    advert_interval: float
    auth: bytes  # the 8 bytes of simple-password auth (VRRPv2), else b""


def parse_packet(packet):
    """An IPv4 packet as a raw socket delivers it -> Advert, or None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != VRRP_PROTO or len(packet) < ihl + 8:
        return None
    source = socket.inet_ntoa(packet[12:16])
    vrrp = packet[ihl:]
    version, kind = vrrp[0] >> 4, vrrp[0] & 0x0F
    if kind != 1 or version not in (2, 3):
        return None
    vrid, priority, count = vrrp[1], vrrp[2], vrrp[3]
    if version == 2:
        auth_type, interval = vrrp[4], float(vrrp[5])
        end = 8 + 4 * count
        auth = bytes(vrrp[end:end + 8]) if auth_type == 1 and len(vrrp) >= end + 8 else b""
    else:
        interval = (struct.unpack("!H", vrrp[4:6])[0] & 0x0FFF) / 100.0
        auth = b""
    return Advert(source, version, vrid, priority, interval, auth)


def auth_bytes(password):
    return password.encode("ascii")[:8].ljust(8, b"\0")


class PeerTable:
    """
    Who advertised our virtual router id recently.  ``observe`` returns
    True when the table changed in a way worth writing out.
    """

    def __init__(self, vrid, password, own_addresses=()):
        self.vrid = vrid
        self._auth = auth_bytes(password)
        self.own = set(own_addresses)
        self.peers = {}  # source -> dict
        self.mismatched = set()

    def observe(self, advert, now):
        if advert is None or advert.vrid != self.vrid or advert.source in self.own:
            return False
        if advert.auth != self._auth:
            if advert.source not in self.mismatched:
                self.mismatched.add(advert.source)
                log.warn(
                    "VRRP adverts for virtual router {vrid} from {peer} use a different "
                    "password (or VRRP version): the nodes ignore each other and both may "
                    "hold the VIP. Use the same password on every node.",
                    vrid=self.vrid, peer=advert.source)
            return False
        self.mismatched.discard(advert.source)
        before = self.peers.get(advert.source) or {}
        self.peers[advert.source] = {
            "lastSeen": now,
            "priority": advert.priority,
            "advertInterval": advert.advert_interval,
            # The last advert with a priority: a priority-0 advert says the
            # node is leaving (crash, restart, hand-over), not that it was
            # never there; the readiness check's lone-node window counts
            # from here.
            "lastAlive": now if advert.priority > 0 else before.get("lastAlive"),
        }
        return True

    def remember(self, doc):
        """
        Take over the peers of an earlier table or peers.json (same virtual
        router id), so peers are still known after a reload or a sidecar
        restart: a BACKUP never advertises, and the VIP holder would
        otherwise not know whom it could hand the VIP to.  Entries keep
        their lastSeen, so they count as alive only if they were.
        """
        if not isinstance(doc, dict) or doc.get("vrid") != self.vrid:
            return
        peers = doc.get("peers")
        for ip, info in (peers.items() if isinstance(peers, dict) else ()):
            try:
                if ipaddress.ip_address(ip).version != 4 or ip in self.own:
                    continue
            except ValueError:
                continue
            if ip in self.peers or not isinstance(info, dict):
                continue
            seen, prio, interval, alive = (info.get("lastSeen"), info.get("priority"),
                                           info.get("advertInterval"), info.get("lastAlive"))
            if _number(seen) and isinstance(prio, int) and not isinstance(prio, bool) \
                    and 0 <= prio <= 255:
                self.peers[ip] = {"lastSeen": float(seen), "priority": prio,
                                  "advertInterval": interval if _number(interval) else None,
                                  "lastAlive": float(alive) if _number(alive) else None}

    def snapshot(self, now):
        return {
            "updatedAt": now,
            "vrid": self.vrid,
            "peers": {ip: dict(p) for ip, p in sorted(self.peers.items())},
            "passwordMismatch": sorted(self.mismatched),
        }


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RawVrrpReader(FileDescriptor):
    """Reads VRRP packets from a raw socket and hands each to ``receive``."""

    def __init__(self, receive, reactor=None):
        super().__init__(reactor)
        self._receive = receive
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTO)
        self.socket.setblocking(False)

    def fileno(self):
        return self.socket.fileno() if self.socket else -1

    def doRead(self):
        for _ in range(64):
            try:
                packet = self.socket.recv(2048)
            except BlockingIOError:
                return
            except OSError as e:
                log.warn("VRRP listener: {error}", error=e)
                return
            try:
                self._receive(parse_packet(packet))
            except Exception:
                log.failure("VRRP listener: handling an advert failed")

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def close(self):
        self.stopReading()
        self.connectionLost(None)


class PeerWatch:
    """
    The sidecar's view of the other nodes: a L{PeerTable} for the current
    settings, written to peers.json (at most every 0.5 s).  A new table
    (reload, re-enable, sidecar restart) remembers the peers of the one
    before (see L{PeerTable.remember}).
    """

    def __init__(self, clock, path, listening):
        self._clock = clock
        self.path = path
        self._listening = listening  # callable: is the raw socket open?
        self.table = None
        self._last_write = 0.0
        self.problem = None  # why peers.json cannot be written (logged once), or None
        try:
            self._remembered = files.read_json(path)
        except files.FileFormatError:
            self._remembered = None
        self._store(None)

    def configure(self, vrid, password, own):
        now = self._clock.seconds()
        old, self.table = self.table, PeerTable(vrid, password, own)
        self.table.remember(old.snapshot(now) if old is not None else self._remembered)
        self.write(force=True)

    def clear(self):
        if self.table is not None:
            self._remembered = self.table.snapshot(self._clock.seconds())
        self.table = None
        self._store(None)

    def set_own(self, own):
        if self.table is not None:
            self.table.own = set(own)

    def observe(self, advert):
        """True if the advert is from another node of ours (password checked)."""
        if self.table is None or not self.table.observe(advert, self._clock.seconds()):
            return False
        self.write()
        return True

    def write(self, force=False):
        now = self._clock.seconds()
        if self.table is None or (not force and now - self._last_write < 0.5):
            return
        self._last_write = now
        doc = self.table.snapshot(now)
        doc["listening"] = bool(self._listening())
        self._store(doc if doc["listening"] else None)

    def _store(self, doc):
        """Write peers.json (None: remove it).  It only informs (the readiness
        check, peer status): a failure (disk full, a directory in its place)
        is logged once and must never stop the sidecar or keepalived."""
        try:
            if doc is None:
                files.remove_file(self.path)
            else:
                files.write_json(self.path, doc, 0o644)
        except OSError as e:
            problem = f"cannot update {self.path} ({e.strerror})"
            if problem != self.problem:
                log.error("{problem}: peer status is unavailable and a node that is not "
                          "ready stays out of the election until it can be written",
                          problem=problem)
            self.problem = problem
            return
        if self.problem is not None:
            log.info("{path} is written again", path=self.path)
            self.problem = None
