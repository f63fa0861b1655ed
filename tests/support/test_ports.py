"""The test suite's free ports stay clear of the ones the kernel picks."""

import os
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.support import ports


class FreePortTests(SynchronousTestCase):
    def test_ports_are_outside_the_kernels_ephemeral_range(self):
        """A daemon gets its ports a second or so after they are chosen; a
        port in the ephemeral range can meanwhile become the source port
        of any connection on the machine, and the daemon cannot start."""
        low, high = ports.ephemeral_range()
        if low - ports._LOWEST < 2000 and high >= 65535 - 2000:
            raise self.skipTest(f"no room outside the ephemeral range {low}-{high}")
        for _ in range(200):
            port = ports.free_port()
            self.assertFalse(low <= port <= high, f"{port} is in {low}-{high}")

    def test_ports_are_distinct_and_free_for_tcp_and_udp(self):
        given = [ports.free_port() for _ in range(100)]
        self.assertEqual(len(set(given)), 100)
        for port in given[:10]:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))

    def test_a_port_taken_for_udp_only_is_not_given(self):
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(50):  # hold the next candidates for UDP
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            port = ports.free_port()
            ports._given.discard(port)
            s.bind(("127.0.0.1", port))
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        for _ in range(200):
            self.assertNotIn(ports.free_port(), taken)

    def test_the_range_is_read_from_the_system(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("20000\t50000\n")
        self.addCleanup(os.unlink, f.name)
        self.assertEqual(ports.ephemeral_range(f.name), (20000, 50000))
        self.assertEqual(ports.ephemeral_range(f.name + ".missing"), (32768, 60999))
