"""
Wall-clock steps: noticed, and the reactor's timers kept on time.

Twisted schedules every ``callLater`` on the wall clock (``reactor.seconds``
is ``time.time``; twisted/twisted#2424).  When the clock steps back (a Pi
without a real-time clock: fake-hwclock restored a time later than the
real one, or an admin fixed a clock that ran ahead), every pending timer
waits for the step on top of its delay: after a step back by an hour the
forwarder's timeout sweep, TCP idle timeouts, the self-probe and every
LoopingCall stop for an hour.  A step forward makes them fire early, once,
which is harmless.

L{ClockSteps} compares the wall clock with a clock that never steps (an
injected callable, by default ``CLOCK_BOOTTIME``: monotonic, and counting
suspended time like the wall clock does) once a second.  The tick comes
from a thread (``callFromThread``), not from a reactor timer, because those
are exactly what a step back stops.  When the two disagree by more than
``margin``, a step back moves every pending timer back by the step (each
keeps the delay it had), and either way the listeners get the step
(seconds, negative for a step back) to rebase the times they remember.
The reactor's own clock stays the wall clock: query log timestamps are
wall-clock times.

This is the only place that tells a step: the forwarders' timeout sweeps
call L{ClockSteps.check} before comparing deadlines (a step forward makes
the reactor run them at once, before the next tick), and get the step
back as a listener like everyone else (L{sentinel.dns.engine.Engine.watch_clock}).
"""

import threading
import time

from twisted.logger import Logger

log = Logger()

MARGIN = 1.0  # smaller differences are NTP slewing or a late tick, not a step
TICK = 1.0


def _default_monotonic():
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is not None:
        try:
            time.clock_gettime(boottime)
            return lambda: time.clock_gettime(boottime)
        except OSError:
            pass
    return time.monotonic


def move_timers(clock, step):
    """Move every pending timer of ``clock`` by ``step`` seconds (public DelayedCall API)."""
    now = clock.seconds()
    moved = 0
    for call in list(clock.getDelayedCalls()):
        if call.active():
            call.reset(max(0.0, call.getTime() + step - now))
            moved += 1
    return moved


class ClockSteps:
    def __init__(self, reactor, monotonic=None, margin=MARGIN, tick=TICK):
        self.reactor = reactor
        self.monotonic = monotonic if monotonic is not None else _default_monotonic()
        self.margin = margin
        self.tick = tick
        self.listeners = []  # callables(step)
        self.steps = 0
        self._wall = self._mono = None
        self._thread = None
        self._stopping = threading.Event()

    def check(self):
        """
        The step since the last check (0.0 if none); runs in the reactor
        thread (the tick, and the forwarders' sweeps): checking more often
        only finds a step sooner.
        """
        wall, mono = self.reactor.seconds(), self.monotonic()
        last_wall, last_mono = self._wall, self._mono
        self._wall, self._mono = wall, mono
        if last_wall is None:
            return 0.0
        step = (wall - last_wall) - (mono - last_mono)
        if -self.margin <= step <= self.margin:
            return 0.0
        self.steps += 1
        moved = move_timers(self.reactor, step) if step < 0 else 0
        log.warn("the wall clock stepped {dir} by {s:.1f}s; {n} timers moved back with it",
                 dir="back" if step < 0 else "forward", s=abs(step), n=moved)
        for listener in self.listeners:
            try:
                listener(step)
            except Exception:
                log.failure("rebasing after a clock step failed")
        return step

    def start(self):
        if self._thread is not None:
            return
        self.check()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="clock-steps", daemon=True)
        self._thread.start()

    def stop(self):
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()

    def _run(self):
        # Event.wait times out on the monotonic clock: a step does not stop it.
        while not self._stopping.wait(self.tick):
            self.reactor.callFromThread(self.check)
