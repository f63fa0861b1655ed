"""
A small authoritative DNS server on loopback, for tests that need an
upstream.  It runs in its own thread (so it works from SynchronousTestCase
end-to-end tests and from reactor-based tests alike), answers UDP and TCP
on the same port of 127.0.0.1, and never talks to anything else.

Typical use::

    from tests.support.upstream import Upstream

    up = Upstream.start(self, {
        "www.example.test": {"A": ["198.18.0.10"], "AAAA": ["2001:db8::10"]},
        "alias.example.test": {"CNAME": "www.example.test"},
        "example.test": {"MX": [(10, "mail.example.test")], "TXT": ["hello"]},
        "10.0.18.198.in-addr.arpa": {"PTR": ["www.example.test"]},
        "short.example.test": {"A": ["198.18.0.11"], "ttl": 5},
    })
    daemon = Daemon(self, upstreams=[up.spec]).start()     # "127.0.0.1:PORT"
    ...
    self.assertEqual(up.count("www.example.test", "A"), 1)

Zone: ``{name: {TYPE: value(s), "ttl": seconds}}``; names may be given
with or without the trailing dot, any case.  Types: A, AAAA, CNAME (one
target), MX ([(pref, host)]), TXT ([text]), PTR ([host]), NS ([host]),
SRV ([(prio, weight, port, target)]).  The zone's origin (for the SOA
sent with NXDOMAIN/NODATA answers) is ``origin`` (default "test.");
a name that is not in the zone gets NXDOMAIN, a name without the asked
type NODATA; both carry the SOA, whose TTL and MINIMUM are
``negative_ttl`` (default 30).  A CNAME is followed inside the zone.

Behaviour knobs (attributes; change them any time, they are read per query):

- ``mode``: "ok" (default), "dead" (never answers), "servfail",
  "refused".
- ``delay``: seconds to wait before answering (other queries are served
  meanwhile).
- ``truncate``: answer every UDP query with TC=1 and no records (TCP
  answers are complete).  Big answers are truncated over UDP anyway when
  they exceed the client's EDNS size (or 512).
- ``spoof``: "id" sends, before the real answer, a response with a wrong
  ID and the address ``SPOOF_ADDRESS``; "question" sends one with the
  right ID for another question.  ``spoof_delay`` (default 0.05 s)
  separates the forgery from the real answer.
- ``tcp``: False closes TCP connections at once.

Observation: ``queries`` is the list of ``(proto, name, type)`` received
(name lowercase without the trailing dot, type as text, e.g. "AAAA"),
``count(name=None, qtype=None, proto=None)`` counts matching ones,
``messages`` the raw dnspython query messages, ``reset()`` clears them.
"""

import heapq
import selectors
import socket
import struct
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SPOOF_ADDRESS = "198.18.66.66"


def _name(text):
    return dns.name.from_text(text.rstrip(".").lower() + ".")


def _rdata_texts(rtype, value):
    if rtype == "CNAME":
        return [_name(value).to_text()]
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        if rtype == "MX":
            out.append(f"{v[0]} {_name(v[1]).to_text()}")
        elif rtype == "SRV":
            out.append(f"{v[0]} {v[1]} {v[2]} {_name(v[3]).to_text()}")
        elif rtype in ("PTR", "NS"):
            out.append(_name(v).to_text())
        elif rtype == "TXT":
            out.append('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(str(v))
    return out


class Upstream:
    """See the module docstring."""

    def __init__(self, zone, origin="test.", negative_ttl=30, ttl=300):
        self.origin = _name(origin)
        self.negative_ttl = negative_ttl
        self.default_ttl = ttl
        self.records = {}  # dns.name.Name -> {rdtype: (ttl, [rdata])}
        self.set_zone(zone)
        self.mode = "ok"
        self.delay = 0.0
        self.truncate = False
        self.spoof = None
        self.spoof_delay = 0.05
        self.tcp = True
        self.queries = []
        self.messages = []
        self._lock = threading.Lock()
        self._timers = []  # heap of (when, seq, fn)
        self._seq = 0
        self._stop = False
        self._thread = None
        self.port = None

    # -- set-up -----------------------------------------------------------

    @classmethod
    def start(cls, testcase, zone, **kw):
        """Create, start, and stop it in the test's cleanup."""
        server = cls(zone, **kw)
        server.run()
        testcase.addCleanup(server.close)
        return server

    def set_zone(self, zone):
        records = {}
        for name, types in zone.items():
            ttl = types.get("ttl", self.default_ttl)
            entry = records.setdefault(_name(name), {})
            for rtype, value in types.items():
                if rtype == "ttl":
                    continue
                rdtype = dns.rdatatype.from_text(rtype)
                rdatas = [
                    dns.rdata.from_text(dns.rdataclass.IN, rdtype, t)
                    for t in _rdata_texts(rtype, value)
                ]
                entry[rdtype] = (ttl, rdatas)
        self.records = records

    @property
    def spec(self):
        """The upstream spec to give Sentinel: "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self.port}"

    def run(self):
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        else:
            raise RuntimeError("no free port for the test upstream")
        tcp.listen(64)
        udp.setblocking(False)
        tcp.setblocking(False)
        self.port = port
        self._udp, self._tcp = udp, tcp
        self._sel = selectors.DefaultSelector()
        self._sel.register(udp, selectors.EVENT_READ, self._on_udp)
        self._sel.register(tcp, selectors.EVENT_READ, self._on_accept)
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"test-upstream-{port}")
        self._thread.start()
        return self

    def close(self):
        if self._thread is None:
            return
        self._stop = True
        self._thread.join(5)
        self._thread = None
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()

    # -- observation -----------------------------------------------------

    def count(self, name=None, qtype=None, proto=None):
        with self._lock:
            qs = list(self.queries)
        name = name.rstrip(".").lower() if name else None
        return sum(
            1 for p, n, t in qs
            if (name is None or n == name) and (qtype is None or t == qtype)
            and (proto is None or p == proto)
        )

    def reset(self):
        with self._lock:
            self.queries.clear()
            self.messages.clear()

    # -- the loop (server thread) ----------------------------------------------

    def _later(self, delay, fn):
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._seq, fn))

    def _loop(self):
        while not self._stop:
            timeout = 0.05
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            for key, _ in self._sel.select(timeout):
                try:
                    key.data(key.fileobj)
                except OSError:
                    pass
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                try:
                    fn()
                except OSError:
                    pass

    def _on_udp(self, sock):
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except BlockingIOError:
                return
            self._query(data, "udp", lambda wire, a=addr: sock.sendto(wire, a))

    def _on_accept(self, sock):
        conn, _ = sock.accept()
        if not self.tcp:
            conn.close()
            return
        conn.setblocking(False)
        self._sel.register(conn, selectors.EVENT_READ, self._reader(conn))

    def _reader(self, conn):
        buf = bytearray()

        def send(wire):
            try:
                conn.setblocking(True)
                conn.sendall(struct.pack("!H", len(wire)) + wire)
                conn.setblocking(False)
            except OSError:
                pass

        def on_read(_):
            try:
                chunk = conn.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._sel.unregister(conn)
                conn.close()
                return
            buf.extend(chunk)
            while len(buf) >= 2:
                size = struct.unpack("!H", buf[:2])[0]
                if len(buf) < 2 + size:
                    break
                data = bytes(buf[2:2 + size])
                del buf[:2 + size]
                self._query(data, "tcp", send)

        return on_read

    # -- answering ---------------------------------------------------------

    def _query(self, data, proto, send):
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        if not query.question:
            return
        q = query.question[0]
        with self._lock:
            self.queries.append((proto, q.name.to_text().rstrip(".").lower(),
                                 dns.rdatatype.to_text(q.rdtype)))
            self.messages.append(query)
        mode = self.mode
        if mode == "dead":
            return
        response = self._answer(query, mode)
        limit = 65535
        if proto == "udp":
            limit = max(512, query.payload) if query.edns >= 0 else 512
        if proto == "udp" and self.truncate:
            response = self._truncated(query)
        try:
            wire = response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            wire = self._truncated(query).to_wire()
        if self.spoof and proto == "udp":
            forged = self._forgery(query, self.spoof)
            send(forged)
            self._later(self.delay + self.spoof_delay, lambda: send(wire))
        elif self.delay:
            self._later(self.delay, lambda: send(wire))
        else:
            send(wire)

    def _truncated(self, query):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        return response

    def _forgery(self, query, kind):
        forged = dns.message.make_response(query)
        q = query.question[0]
        if kind == "question":
            other = dns.name.from_text("forged." + q.name.to_text())
            forged.question = [dns.rrset.RRset(other, q.rdclass, q.rdtype)]
            name = other
        else:
            forged.id = (query.id + 1) & 0xFFFF
            name = q.name
        forged.answer.append(
            dns.rrset.from_text(name, 300, "IN", "A", SPOOF_ADDRESS))
        return forged.to_wire()

    def _answer(self, query, mode):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if mode == "refused":
            response.set_rcode(dns.rcode.REFUSED)
            return response
        q = query.question[0]
        name = q.name.canonicalize()
        for _ in range(8):
            entry = self.records.get(name)
            if entry is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                    response.authority.append(self._soa())
                return response
            if dns.rdatatype.CNAME in entry and q.rdtype != dns.rdatatype.CNAME:
                ttl, rdatas = entry[dns.rdatatype.CNAME]
                response.answer.append(dns.rrset.from_rdata_list(name, ttl, rdatas))
                name = rdatas[0].target.canonicalize()
                continue
            if q.rdtype in entry:
                ttl, rdatas = entry[q.rdtype]
                response.answer.append(dns.rrset.from_rdata_list(name, ttl, rdatas))
            elif not response.answer:
                response.authority.append(self._soa())
            return response
        return response

    def _soa(self):
        t = self.negative_ttl
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.SOA,
            f"ns.{self.origin} hostmaster.{self.origin} 1 3600 600 86400 {t}")
        return dns.rrset.from_rdata_list(self.origin, t, [rdata])
