"""
DNS across wall-clock steps (a Pi without a real-time clock is stepped by
NTP at boot, forward by months or back by hours): the clock is a Clock
whose time is set backwards or forwards, beside a monotonic one that only
advances.
"""

import struct
import threading

import dns.message
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from sentinel.dns.access import LIMITED, OK, Access
from sentinel.dns.answer import parse_response
from sentinel.dns.cache import Cache
from sentinel.dns.clocksteps import ClockSteps
from sentinel.dns.fastpath import FastPath
from sentinel.dns.forwarder import Upstream
from sentinel.dns.probe import DnsProbe
from sentinel.dns.tcpserver import DnsTcpFactory
from sentinel.dns.upstreamspec import parse_upstream
from tests.dns.fakes import CLIENT
from tests.dns.fakes import Harness as EngineHarness
from tests.dns.test_cache_forwarder import QUESTION, FakeTransport, Harness, answer_wire

HOUR, DAY = 3600.0, 86400.0


class SteppingClock(Clock):
    """A wall clock that can step, and beside it a monotonic one that cannot."""

    def __init__(self, now=1_000_000.0):
        super().__init__()
        self.rightNow = now
        self.mono = 0.0

    def advance(self, amount):
        self.mono += amount
        super().advance(amount)

    def run(self, seconds, tick=0.05):
        """Advance in small steps, as a reactor would run its timers."""
        for _ in range(round(seconds / tick)):
            self.advance(tick)

    def monotonic(self):
        return self.mono

    def step(self, seconds):
        self.rightNow += seconds


class StepHarness(EngineHarness):
    """
    An engine with two upstreams and two LAN upstreams (the two forwarders),
    watching a clock that steps: steps reach them only through the engine.
    """

    def __init__(self):
        super().__init__(upstreams=2, clock=SteppingClock())
        self.lan_transports = [FakeTransport() for _ in range(2)]
        self.engine.lan_forwarder.set_upstreams([
            Upstream(parse_upstream(f"198.18.1.{1 + i}"), t,
                     self.engine.stats.upstream(f"198.18.1.{1 + i}"))
            for i, t in enumerate(self.lan_transports)])
        self.engine.lan_forwarder.start()
        self.steps = ClockSteps(self.clock, monotonic=self.clock.monotonic)
        self.engine.watch_clock(self.steps)
        self.steps.check()

    def step(self, seconds):
        self.clock.step(seconds)
        self.clock.advance(0.5)  # the watcher ticks once a second
        self.steps.check()
        self.clock.advance(0)  # timers due now run


class ClockStepsTests(SynchronousTestCase):
    def setUp(self):
        self.clock = SteppingClock()
        self.steps = ClockSteps(self.clock, monotonic=self.clock.monotonic)
        self.seen = []
        self.steps.listeners.append(self.seen.append)
        self.steps.check()

    def test_a_step_back_keeps_the_timers_on_time(self):
        ticks, fired = [], []
        loop = LoopingCall(lambda: ticks.append(self.clock.seconds()))
        loop.clock = self.clock
        loop.start(0.1, now=False)
        self.clock.callLater(5.0, fired.append, True)
        self.clock.advance(1.0)
        self.clock.step(-HOUR)
        self.assertAlmostEqual(self.steps.check(), -HOUR)
        before = len(ticks)
        self.clock.advance(0.2)
        self.assertGreater(len(ticks), before)  # not an hour from now
        self.clock.advance(3.9)
        self.assertEqual(fired, [True])  # 5 s after it was asked for
        self.assertEqual(len(self.seen), 1)
        self.assertAlmostEqual(self.seen[0], -HOUR)
        loop.stop()

    def test_a_step_forward_is_reported(self):
        self.clock.advance(1.0)
        self.clock.step(90 * DAY)
        self.clock.advance(1.0)
        self.assertAlmostEqual(self.steps.check(), 90 * DAY)
        self.assertEqual(len(self.seen), 1)
        self.assertAlmostEqual(self.seen[0], 90 * DAY)

    def test_slewing_and_late_ticks_are_not_steps(self):
        self.clock.advance(5.0)
        self.clock.step(0.5)
        self.assertEqual(self.steps.check(), 0.0)
        self.clock.advance(30.0)  # a tick late: both clocks moved alike
        self.assertEqual(self.steps.check(), 0.0)
        self.assertEqual(self.seen, [])

    def test_a_failing_listener_does_not_stop_the_others(self):
        self.steps.listeners.insert(0, lambda step: 1 / 0)
        self.clock.step(-HOUR)
        self.steps.check()
        self.assertEqual(len(self.seen), 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_checks_come_from_a_thread(self):
        called = threading.Event()

        class Reactor:
            def seconds(self):
                return 0.0

            def callFromThread(self, f):
                called.set()

        steps = ClockSteps(Reactor(), monotonic=lambda: 0.0, tick=0.01)
        steps.start()
        try:
            self.assertTrue(called.wait(10))
        finally:
            steps.stop()
        self.assertIsNone(steps._thread)


class ForwarderStepTests(SynchronousTestCase):
    """Both forwarders (upstreams, LAN upstreams) keep their times across a step."""

    def routes(self):
        """(harness, forwarder, names asked of it, its upstreams' transports) for each."""
        for which, names, transports in (
                ("forwarder", ("www.example", "www2.example"), "transports"),
                ("lan_forwarder", ("printer", "scanner"), "lan_transports")):
            h = StepHarness()
            yield h, getattr(h.engine, which), names, getattr(h, transports)

    def test_a_lost_query_still_times_out_after_a_step_back(self):
        for h, fwd, (name, _), transports in self.routes():
            h.ask(name)
            h.step(-HOUR)
            # The sweep did not run between the step and the watcher's tick
            # (up to a second): the timeout comes that much late, not an hour.
            h.clock.run(1.2)
            self.assertEqual(len(transports[1].sent), 1, name)  # failed over, not stuck
            transports[1].answer()
            self.assertEqual(h.reply().answer[0][0].address, "198.18.0.1")
            self.assertEqual(h.log.last()["upstream"], fwd.upstreams[1].text)
            self.assertEqual(fwd.inflight, {})

    def test_a_step_back_does_not_lengthen_a_back_off(self):
        for h, fwd, (name, _), transports in self.routes():
            up = fwd.upstreams[0]
            for _ in range(10):
                fwd._unhealthy(up, h.clock.seconds())
            h.step(-HOUR)
            h.clock.run(61.0)  # 60 s, and up to a second for the watcher's tick
            h.ask(name)
            self.assertEqual(len(transports[0].sent), 1, name)  # its 60 s back-off is over
            self.assertEqual(transports[1].sent, [], name)

    def test_a_step_forward_does_not_time_out_queries_in_flight(self):
        for h, fwd, (name, later), transports in self.routes():
            h.ask(name)
            h.clock.advance(0.3)
            h.clock.step(90 * DAY)
            h.clock.advance(0.1)  # the sweep runs (at once, for the reactor) before a tick
            self.assertEqual(transports[1].sent, [], name)
            transports[0].answer()
            self.assertEqual(h.reply().answer[0][0].address, "198.18.0.1")
            self.assertEqual(fwd.upstreams[0].stats.errors, {}, name)
            h.clock.advance(0.5)
            h.steps.check()  # the watcher's tick: the same step is not taken twice
            self.assertEqual(h.steps.steps, 1, name)
            h.ask(later)
            h.clock.advance(1.6)  # later timeouts are on time
            self.assertEqual(len(transports[1].sent), 1, name)
            self.assertEqual(fwd.upstreams[0].stats.errors, {"timeout": 1}, name)

    def test_upstream_latency_is_never_negative(self):
        h = Harness(clock=SteppingClock())
        h.fwd.resolve(b"k", QUESTION, 0, "w")
        h.clock.step(-HOUR)  # answered before the sweep or the watcher noticed
        h.transports[0].answer()
        stats = h.fwd.upstreams[0].stats
        self.assertEqual((stats.latency_count, stats.latency_sum), (1, 0.0))


def ttls(answer, body):
    return [struct.unpack_from("!I", body, off)[0] for off in answer.offsets]


class CacheStepTests(SynchronousTestCase):
    def entry(self, ttl=60):
        return parse_response(answer_wire(b"\x00\x01", ttl=ttl), 12 + len(QUESTION))

    def test_ttls_never_count_up_after_a_step_back(self):
        answer = self.entry(60)
        answer.stamp(1000.0)
        self.assertEqual(ttls(answer, answer.body_at(1030.0)), [30])
        self.assertEqual(ttls(answer, answer.body_at(1030.0 - HOUR)), [60])
        self.assertEqual(ttls(answer, answer.body_at(1040.0 - HOUR)), [60])  # until rebased

    def test_answers_keep_their_ttl_across_a_step_back(self):
        c = Cache()
        c.put(b"k", self.entry(60), 1000.0)
        c.shift(-HOUR)
        now = 1030.0 - HOUR
        entry = c.get(b"k", now)
        self.assertEqual(ttls(entry, entry.body_at(now)), [30])
        self.assertIsNotNone(c.get(b"k", now + 29))
        self.assertIsNone(c.get(b"k", now + 31))  # not an hour later

    def test_answers_stay_and_stale_ones_servable_after_a_step_forward(self):
        c = Cache()
        c.put(b"k", self.entry(60), 1000.0)
        c.shift(90 * DAY)
        now = 1030.0 + 90 * DAY
        entry = c.get(b"k", now)
        self.assertEqual(ttls(entry, entry.body_at(now)), [30])
        self.assertIsNone(c.get(b"k", now + 31))
        self.assertIsNotNone(c.stale(b"k", now + 31))


class EngineStepTests(SynchronousTestCase):
    def harness(self):
        h = EngineHarness(clock=SteppingClock())
        h.steps = ClockSteps(h.clock, monotonic=h.clock.monotonic)
        h.engine.watch_clock(h.steps)
        h.steps.check()
        return h

    def test_stale_answers_are_served_after_a_big_step_forward(self):
        h = self.harness()
        h.ask("www.example")
        h.upstream_answers(("www.example.", 60, "IN", "A", "198.18.0.7"))
        h.clock.step(90 * DAY)
        h.clock.advance(0.5)
        h.steps.check()
        h.clock.advance(61.0)
        h.ask("www.example")
        self.assertEqual(len(h.transports[0].sent), 2)  # expired: asked again
        h.clock.advance(1.6)  # the upstream does not answer
        reply = h.reply()
        self.assertEqual(reply.rcode(), 0)
        self.assertEqual(reply.answer[0].ttl, 30)  # RFC 8767 stale answer

    def test_cached_ttls_do_not_grow_after_a_step_back(self):
        h = self.harness()
        fast = FastPath(h.engine)
        h.ask("www.example")
        h.upstream_answers(("www.example.", 60, "IN", "A", "198.18.0.7"))
        h.clock.advance(20.0)
        h.clock.step(-HOUR)
        q = dns.message.make_query("www.example", "A")
        for _ in range(2):  # before the watcher noticed, and after
            h.port.sent.clear()
            fast.handle(q.to_wire(), CLIENT, h.port, None)
            self.assertLessEqual(h.reply().answer[0].ttl, 60)
            h.clock.advance(0.5)
            h.steps.check()
        h.clock.advance(60.0)
        fast.handle(q.to_wire(), CLIENT, h.port, None)
        self.assertEqual(len(h.transports[0].sent), 2)  # expired within its TTL, not an hour

    def test_query_log_durations_are_never_negative(self):
        h = self.harness()
        h.ask("www.example")
        h.clock.step(-HOUR)
        h.upstream_answers(("www.example.", 60, "IN", "A", "198.18.0.7"))
        self.assertEqual(h.log.last()["duration_ms"], 0.0)


class AccessStepTests(SynchronousTestCase):
    def test_a_step_back_does_not_block_a_client(self):
        a = Access(rate=10, burst=20)
        for _ in range(10):
            self.assertEqual(a.check("192.168.1.9", 1000.0), OK)
        self.assertEqual(a.check("192.168.1.9", 1000.0 - HOUR), OK)  # 9 tokens left
        for _ in range(9):
            a.check("192.168.1.9", 1000.0 - HOUR)
        self.assertEqual(a.check("192.168.1.9", 1000.0 - HOUR), LIMITED)
        self.assertEqual(a.check("192.168.1.9", 1001.0 - HOUR), OK)  # refilled as usual

    def test_a_step_forward_gives_one_burst(self):
        a = Access(rate=10, burst=20, slip=0)
        a.check("192.168.1.9", 1000.0)
        results = [a.check("192.168.1.9", 1000.0 + DAY) for _ in range(21)]
        self.assertEqual(results, [OK] * 20 + [LIMITED])


class ProbeStepTests(SynchronousTestCase):
    def test_the_probe_stays_healthy_across_a_step(self):
        clock = SteppingClock()
        probe = DnsProbe(clock, lambda query: None)
        probe.probe()
        probe.received(probe._expect + b"\x80\x00")
        for step in (90 * DAY, -HOUR):
            clock.step(step)
            probe.clock_stepped(step)
            self.assertTrue(probe.healthy())


class TcpStepTests(SynchronousTestCase):
    def test_idle_connections_close_on_time_after_a_step_back(self):
        clock = SteppingClock()
        steps = ClockSteps(clock, monotonic=clock.monotonic)
        steps.check()
        h = EngineHarness(clock=clock)
        factory = DnsTcpFactory(h.engine, h.engine.stats, idle_timeout=10, clock=clock)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.168.1.20", 5000),
                                    hostAddress=IPv4Address("TCP", "192.168.1.2", 53))
        factory.buildProtocol(None).makeConnection(transport)
        clock.advance(5)
        clock.step(-HOUR)
        clock.advance(0.5)
        steps.check()
        clock.advance(4)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)  # 10 s idle, not an hour and 10 s
