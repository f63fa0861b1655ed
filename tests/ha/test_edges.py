"""The sidecar's real edges on loopback: daemon liveness, the notify FIFO, keepalived processes."""

import os
import sys
import tempfile

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.ha.keepalived import Keepalived, Launcher
from sentinel.ha.liveness import DaemonWatch
from sentinel.ha.notify import FifoReader


def wait_for(predicate, timeout=5.0):
    async def poll():
        for _ in range(int(timeout / 0.01)):
            if predicate():
                return True
            await task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("condition not reached")
    return defer.ensureDeferred(poll())


class _Server(Protocol):
    def connectionMade(self):
        self.factory.connections.append(self)


class LivenessTests(TestCase):
    async def test_port_vanishing_is_noticed_at_once(self):
        factory = Factory.forProtocol(_Server)
        factory.connections = []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        number = port.getHost().port
        changes = []
        logged = []

        def observe(event):  # the sidecar's log: not two lines per attempt
            text = formatEvent(event)
            if "factory" in text and "liveness" in text:
                logged.append(text)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        watch = DaemonWatch(reactor, "127.0.0.1", number, changes.append)
        watch.start()
        self.addCleanup(watch.stop)
        await wait_for(lambda: changes == [True])
        # The daemon "dies": listener closed, its connections dropped.
        await port.stopListening()
        for c in factory.connections:
            c.transport.abortConnection()
        await wait_for(lambda: changes == [True, False])
        await task.deferLater(reactor, 0.6, lambda: None)  # a few attempts while down
        self.assertEqual(logged, [])
        # It comes back on the same port.
        port = reactor.listenTCP(number, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        await wait_for(lambda: changes == [True, False, True])

    async def test_idle_close_by_the_daemon_is_not_a_death(self):
        factory = Factory.forProtocol(_Server)
        factory.connections = []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        changes = []
        watch = DaemonWatch(reactor, "127.0.0.1", port.getHost().port, changes.append)
        watch.start()
        self.addCleanup(watch.stop)
        await wait_for(lambda: factory.connections)
        factory.connections[0].transport.loseConnection()
        await wait_for(lambda: len(factory.connections) == 2)  # reconnected
        self.assertEqual(changes, [True])


class LivenessTimingTests(SynchronousTestCase):
    """How fast: with a Clock (no real time), a death is known without waiting."""

    def test_lost_connection_reconnects_at_once_and_refused_means_dead(self):
        clock = MemoryReactorClock()
        changes = []
        watch = DaemonWatch(clock, "127.0.0.1", 8080, changes.append)
        watch.start()
        factory = clock.tcpClients[0][2]
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        self.assertEqual(changes, [True])
        protocol.connectionLost(Failure(ConnectionDone()))
        clock.advance(0)  # no delay before the reconnect
        self.assertEqual(len(clock.tcpClients), 2)
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(changes, [True, False])
        # While down it retries every RETRY seconds, and notices the return.
        clock.advance(DaemonWatch.RETRY)
        self.assertEqual(len(clock.tcpClients), 3)
        factory.buildProtocol(None).makeConnection(StringTransport())
        self.assertEqual(changes, [True, False, True])
        watch.stop()


    def test_a_failing_report_is_made_again_and_attempts_go_on(self):
        """Writing the track file fails once (disk full): logged, the attempts
        go on, and the next one reports the daemon dead again."""
        clock = MemoryReactorClock()
        changes, fails = [], [OSError(28, "No space left on device")]

        def on_change(alive):
            if not alive and fails:
                raise fails.pop()
            changes.append(alive)

        watch = DaemonWatch(clock, "127.0.0.1", 8080, on_change)
        watch.start()
        factory = clock.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual((changes, len(self.flushLoggedErrors(OSError))), ([], 1))
        clock.advance(DaemonWatch.RETRY)
        self.assertEqual(len(clock.tcpClients), 2)
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(changes, [False])
        clock.advance(DaemonWatch.RETRY)
        factory.buildProtocol(None).makeConnection(StringTransport())
        self.assertEqual(changes, [False, True])
        watch.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_failing_up_report_is_made_again_while_the_connection_stays(self):
        """The daemon comes up while the track file cannot be written (disk
        full): the connection then stays open and brings no further result,
        yet 'up' must still be reported once the write works -- else the
        node stays out of the election for good (no VIP if the peer fails)."""
        clock = MemoryReactorClock()
        changes, fails = [], [OSError(28, "No space left on device")] * 2

        def on_change(alive):
            if fails:
                raise fails.pop()
            changes.append(alive)

        watch = DaemonWatch(clock, "127.0.0.1", 8080, on_change)
        watch.start()
        factory = clock.tcpClients[0][2]
        factory.buildProtocol(None).makeConnection(StringTransport())
        self.assertEqual(changes, [])
        clock.advance(DaemonWatch.RETRY)
        self.assertEqual(changes, [])  # still failing: once more
        clock.advance(DaemonWatch.RETRY)
        self.assertEqual(changes, [True])
        self.assertEqual(len(clock.tcpClients), 1)  # no reconnect needed
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)  # one log entry
        clock.advance(DaemonWatch.RETRY)
        self.assertEqual(changes, [True])
        watch.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

class FifoTests(TestCase):
    async def test_lines_in_order_across_writer_reopen(self):
        path = os.path.join(tempfile.mkdtemp(), "notify.fifo")
        lines = []
        fifo = FifoReader(path, lines.append, reactor)
        fifo.startReading()
        self.addCleanup(fifo.close)
        for states in (("BACKUP", "MASTER"), ("FAULT",)):  # keepalived restarts in between
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, "".join(f'INSTANCE "sentinel" {s} 120\n' for s in states).encode())
            os.close(fd)
        await wait_for(lambda: len(lines) == 3)
        self.assertEqual([line.split()[2] for line in lines], ["BACKUP", "MASTER", "FAULT"])


    def test_intact_until_the_fifo_is_removed_or_replaced(self):
        path = os.path.join(tempfile.mkdtemp(), "notify.fifo")
        fifo = FifoReader(path, lambda line: None, reactor)
        self.addCleanup(fifo.close)
        self.assertTrue(fifo.intact())
        os.unlink(path)
        self.assertFalse(fifo.intact())
        os.mkfifo(path)  # what keepalived does when the path is gone
        self.assertFalse(fifo.intact())
        fifo.close(unlink=False)
        self.assertTrue(os.path.exists(path))
FAKE_KEEPALIVED = """
import signal, sys, time
signal.signal(signal.SIGHUP, lambda *a: print("reloaded", flush=True))
signal.signal(signal.SIGTERM, lambda *a: (print("stopping", flush=True), sys.exit(0)))
if "--config-test" in sys.argv:
    print("(line 1) nonsense", flush=True)
    sys.exit(5 if "bad" in " ".join(sys.argv) else 0)
print("started", " ".join(sys.argv[1:]), flush=True)
while True:
    time.sleep(0.05)
"""


class ProcessTests(TestCase):
    """Keepalived supervision with a real child process (a stand-in script)."""

    def setUp(self):
        d = tempfile.mkdtemp()
        self.binary = os.path.join(d, "keepalived")
        with open(self.binary, "w") as f:
            f.write(f"#!{sys.executable}\n{FAKE_KEEPALIVED}")
        os.chmod(self.binary, 0o755)
        self.lines = []
        self.ka = Keepalived(reactor, Launcher(reactor), self.binary, d, self.lines.append)
        self.addCleanup(self.ka.stop)

    async def test_config_test_start_reload_stop(self):
        ok, errors = await self.ka.config_test("/x/good.conf")
        self.assertTrue(ok)
        ok, errors = await self.ka.config_test("/x/bad.conf")
        self.assertFalse(ok)
        self.assertIn("(line 1) nonsense", errors)
        self.ka.start("/x/good.conf")
        await wait_for(lambda: any(line.startswith("started") for line in self.lines))
        self.ka.reload()
        await wait_for(lambda: "reloaded" in self.lines)
        self.assertEqual(self.ka.state, "running")
        await self.ka.stop()
        self.assertIn("stopping", self.lines)
        self.assertEqual(self.ka.state, "stopped")
