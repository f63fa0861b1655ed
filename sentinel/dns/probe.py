"""
The DNS self-probe (``w.dns_probe``, ``w.health_checks["dns"]``): every
``interval`` seconds a tiny query (``probe.sentinel.invalid`` CH TXT, which
the server answers itself, without policy, cache, upstreams or query log)
goes to our own listener.  ``healthy()`` is cheap: it only says whether an
answer came back within the last ``max_age`` seconds, so a node whose DNS
socket is dead or whose reactor is wedged reports unhealthy and the
cluster's readiness check keeps the VIP away from it.

The clock and the way the query is sent are injected: ``send(bytes)``;
the socket side calls ``received(bytes)``.
"""

import struct

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sentinel.dns.engine import PROBE_NAME
from sentinel.dns.wire import CH, TXT, random_ids
from sentinel.periodic import looping_call

log = Logger()


class DnsProbe:
    def __init__(self, clock, send, interval=5.0, max_age=None):
        self.clock = clock
        self.send = send
        self.interval = interval
        self.max_age = max_age if max_age is not None else 2.5 * interval
        self.last_ok = None
        self._expect = None
        self._was_healthy = None
        self._loop = looping_call("the DNS self-probe", self.probe, clock)

    def start(self):
        if not self._loop.running:
            self._loop.start(self.interval, now=True)

    def stop(self):
        if self._loop.running:
            self._loop.stop()

    def probe(self):
        self._report()
        qid = random_ids.next()
        self._expect = qid
        query = qid + b"\x00\x00" + struct.pack("!HHHH", 1, 0, 0, 0) + PROBE_NAME + \
            struct.pack("!HH", TXT, CH)
        try:
            self.send(query)
        except Exception as e:
            log.debug("DNS self-probe could not be sent: {e}", e=e)

    def received(self, data):
        if self._expect is not None and data[:2] == self._expect and len(data) > 3 \
                and data[2] & 0x80 and data[3] & 0xF == 0:
            self._expect = None
            self.last_ok = self.clock.seconds()
            self._report()

    def clock_stepped(self, step):
        """The wall clock stepped: the last answer is as recent as it was."""
        if self.last_ok is not None:
            self.last_ok += step

    def healthy(self):
        return self.last_ok is not None and self.clock.seconds() - self.last_ok <= self.max_age

    def _report(self):
        now = self.healthy()
        if self._was_healthy is not None and now != self._was_healthy:
            if now:
                log.info("DNS self-probe answered again: DNS is healthy")
            else:
                log.warn("DNS self-probe got no answer for {s:.0f}s: DNS is unhealthy",
                         s=self.max_age)
        self._was_healthy = now


class ProbeSocket(DatagramProtocol):
    """The real probe socket: a connected UDP socket on loopback."""

    def __init__(self, reactor, target):
        self.reactor = reactor
        self.target = target
        self.probe = None
        self.port = None

    def open(self, probe):
        self.probe = probe
        interface = "::1" if ":" in self.target[0] else "127.0.0.1"
        if not self.target[0].startswith(("127.", "::1")):
            interface = self.target[0]
        self.port = self.reactor.listenUDP(0, self, interface=interface)
        self.transport.connect(*self.target)

    def send(self, data):
        if self.transport is not None:
            self.transport.write(data)

    def datagramReceived(self, data, addr):
        if self.probe is not None:
            self.probe.received(data)

    def connectionRefused(self):
        pass  # nobody listening: the probe stays unanswered

    def close(self):
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
