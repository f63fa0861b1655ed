"""
DNS over TCP flow control on real loopback sockets: a client that sends
queries and never reads the answers does not make the server buffer them.
"""

import socket
import struct

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sentinel.dns.stats import DnsStats
from sentinel.dns.tcpserver import DnsTcpFactory

ANSWER_BYTES = 4000
QUERIES = 4000  # 16 MB of answers: far more than the kernel's socket buffers


class BigAnswers:
    """An engine that answers every query at once with ANSWER_BYTES."""

    def __init__(self):
        self.handled = 0

    def handle(self, data, addr, port, cmsg):
        self.handled += 1
        port.send(data[:2] + b"\x80" * (ANSWER_BYTES - 2), addr, cmsg)


def buffered(transport):
    """Bytes the server's transport holds in user space, not sent yet."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


class UnreadAnswersTests(TestCase):
    @inlineCallbacks
    def test_server_memory_stays_bounded(self):
        engine = BigAnswers()
        factory = DnsTcpFactory(engine, DnsStats(), idle_timeout=60)
        protocols = []
        build = factory.buildProtocol
        factory.buildProtocol = lambda addr: protocols.append(build(addr)) or protocols[-1]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port.getHost().port))
        except BlockingIOError:
            pass
        query = bytes(12) + b"\x01x\x00\x00\x01\x00\x01"
        pending = struct.pack("!H", len(query)).join([b""] + [query] * QUERIES)
        most = 0
        stable = 0
        last = -1
        for _ in range(400):  # until the server stops taking queries (bounded)
            yield deferLater(reactor, 0.01, lambda: None)
            if pending:
                try:
                    pending = pending[client.send(pending):]
                except BlockingIOError:
                    pass
            if protocols:
                most = max(most, buffered(protocols[0].transport))
            stable = stable + 1 if engine.handled == last else 0
            last = engine.handled
            if engine.handled == QUERIES or (stable >= 20 and engine.handled):
                break
        self.assertLess(engine.handled, QUERIES)  # it stopped reading
        # Twisted's high-water mark (64 KiB) and the answer that crossed it
        # (measured: 68 KB; 15.9 MB, every answer, without flow control).
        self.assertLess(most, 256 * 1024)
        self.assertTrue(protocols[0].paused)
