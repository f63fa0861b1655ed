"""
Forwarding cache misses to the upstreams (no socket code here: transports
do the I/O, see L{sentinel.dns.udp}, L{sentinel.dns.stream},
L{sentinel.dns.doh}).

- Upstreams are tried in order, each at most once per query.  One that
  times out, fails to connect or answers SERVFAIL/REFUSED/NOTIMP/FORMERR
  makes the query move on to the next.  Per-upstream health: after three
  consecutive failures (timeouts, network errors, REFUSED) an upstream is
  skipped for a back-off (2 s doubling to 60 s) while others are healthy;
  one success makes it healthy again.
- Identical queries in flight are coalesced: one upstream query, every
  waiting client answered from it.
- A truncated UDP answer is retried over TCP to the same server; an
  answer still truncated (over TCP, TLS or HTTPS) moves on to the next
  upstream like SERVFAIL: it was cached and served as complete before.
- Timeouts are swept every 100 ms from a queue ordered by deadline
  instead of one DelayedCall per query (cheaper at tens of thousands of
  queries per second).  The queue holds deadline, key, attempt serial as
  three plain values (no tuple, not the attempt): an answered attempt is
  freed at once instead of staying alive for the whole timeout, and the
  garbage collector has nothing to scan there.
- Clock steps are noticed by L{sentinel.dns.clocksteps} (the engine
  passes them on, L{Engine.watch_clock}): L{Forwarder.rebase} moves the
  deadlines and start times still queued with the step (and, after a step
  back, the back-offs), so a step back does not keep a lost query in
  flight (coalescing every retry of its name) for the length of the step,
  and a step forward does not time out every query in flight at once.
  Each sweep first asks the watcher to check (``check_clock``): after a
  step forward the reactor runs the sweep at once, before the watcher's
  next tick, and its deadlines must be rebased before they look due.

The clock is injected; ``accept(data, qend, inflight)`` turns a matched
response into an Answer (raising Malformed to fail over), and
``done(inflight, answer_or_None, upstream)`` receives the outcome.
"""

from collections import deque

from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sentinel.dns.wire import FORMERR, NOTIMP, REFUSED, SERVFAIL, TC, Malformed

log = Logger()

FAIL_RCODES = {SERVFAIL: "servfail", REFUSED: "refused", NOTIMP: "notimp", FORMERR: "formerr"}
DOWN_AFTER = 3
BACKOFF_MIN, BACKOFF_MAX = 2.0, 60.0
BACKOFF_DOUBLINGS = 5  # 2 s * 2 ** 5 > 60 s
MAX_INFLIGHT = 20000
MAX_WAITERS = 256


class Upstream:
    """One configured upstream: its transport(s), health and counters."""

    def __init__(self, spec, transport, stats, tcp=None):
        self.spec = spec
        self.text = spec.text
        self.transport = transport
        self.tcp = tcp  # for UDP upstreams: the TCP transport used after TC
        self.stats = stats
        self.fails = 0
        self.down_until = 0.0

    def healthy(self, now):
        return now >= self.down_until

    def close(self):
        """Close the transports; a Deferred that fires when they are closed."""
        closing = [self.transport.close()]
        if self.tcp is not None:
            closing.append(self.tcp.close())
        return gatherResults([maybeDeferred(lambda d=d: d) for d in closing])


class Inflight:
    __slots__ = ("key", "question", "flags", "waiters", "tried", "attempt", "t0", "context")

    def __init__(self, key, question, flags, waiter, t0, context):
        self.key = key
        self.question = question  # lowercase question section (name, type, class)
        self.flags = flags  # DO | CD<<1 | AD<<2
        self.waiters = [waiter]
        self.tried = 0  # bitmask of upstream indexes tried
        self.attempt = None
        self.t0 = t0
        self.context = context  # engine data (e.g. stale answer)


class Attempt:
    __slots__ = ("fwd", "inflight", "upstream", "transport", "question", "flags", "token",
                 "t0", "done", "serial")

    def __init__(self, fwd, inflight, upstream, transport, t0, serial=0):
        self.serial = serial
        self.fwd = fwd
        self.inflight = inflight
        self.upstream = upstream
        self.transport = transport
        self.question = inflight.question
        self.flags = inflight.flags
        self.token = None
        self.t0 = t0
        self.done = False

    def answered(self, data, qend):
        if not self.done:
            self.fwd._answered(self, data, qend)

    def failed(self, kind):
        if not self.done:
            self.fwd._failed(self, kind)


class Forwarder:
    def __init__(self, clock, accept, done, timeout=1.5, sweep=0.1):
        self.clock = clock
        self.accept = accept
        self.done = done
        self.timeout = timeout
        self.upstreams = []
        self.inflight = {}
        self._deadlines = deque()  # deadline, inflight key, attempt serial, deadline, ...
        self._serial = 0
        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = clock
        self._sweep_interval = sweep
        # Called before each sweep (ClockSteps.check): a clock step it
        # finds comes back as rebase() before any deadline is compared.
        self.check_clock = None
        self.coalesced = 0

    def start(self):
        if not self._sweeper.running:
            self._sweeper.start(self._sweep_interval, now=False)

    def stop(self):
        if self._sweeper.running:
            self._sweeper.stop()
        for key in list(self.inflight):
            self._finish(self.inflight[key], None, None)
        closing = [up.close() for up in self.upstreams]
        return gatherResults([d for d in closing if d is not None])

    def set_upstreams(self, upstreams):
        """Replace the upstream list; queries in flight fail over to the new one."""
        old, self.upstreams = self.upstreams, list(upstreams)
        for up in old:
            up.close()

    # -- queries -----------------------------------------------------------

    def resolve(self, key, question, flags, waiter, context=None):
        """
        Resolve a miss.  Returns False (and does nothing) when the
        forwarder is overloaded; the caller then answers SERVFAIL or drops.
        """
        inflight = self.inflight.get(key)
        if inflight is not None:
            if len(inflight.waiters) >= MAX_WAITERS:
                return False
            inflight.waiters.append(waiter)
            self.coalesced += 1
            return True
        if len(self.inflight) >= MAX_INFLIGHT:
            return False
        inflight = Inflight(key, question, flags, waiter, self.clock.seconds(), context)
        self.inflight[key] = inflight
        self._next(inflight)
        return True

    def _next(self, inflight, now=None):
        now = self.clock.seconds() if now is None else now
        ups = self.upstreams
        if not inflight.tried and ups and now >= ups[0].down_until:  # the usual case
            inflight.tried = 1
            up = ups[0]
            return self._send(inflight, up, up.transport, now)
        choice = None
        for i, up in enumerate(self.upstreams):
            if inflight.tried & (1 << i):
                continue
            if up.healthy(now):
                choice = i
                break
            if choice is None:
                choice = i  # all untried ones are down: use the first anyway
        if choice is None:
            self._finish(inflight, None, None)
            return
        inflight.tried |= 1 << choice
        up = self.upstreams[choice]
        self._send(inflight, up, up.transport, now)

    def _send(self, inflight, up, transport, now):
        self._serial = serial = self._serial + 1
        attempt = Attempt(self, inflight, up, transport, now, serial)
        inflight.attempt = attempt
        up.stats.queries += 1
        deadlines = self._deadlines
        deadlines.append(now + self.timeout)
        deadlines.append(inflight.key)
        deadlines.append(serial)
        transport.send(attempt)

    def _answered(self, attempt, data, qend):
        attempt.done = True
        inflight, up = attempt.inflight, attempt.upstream
        attempt.inflight = None  # the timeout queue keeps the attempt a while
        now = self.clock.seconds()
        up.stats.latency(now - attempt.t0)
        if data[2] & TC:
            if up.tcp is not None and attempt.transport is not up.tcp:
                self._send(inflight, up, up.tcp, now)
                return
            # Truncated over TCP, TLS or HTTPS too: an incomplete answer,
            # never cached or passed on as if complete; the next upstream.
            up.stats.error("truncated")
            self._next(inflight, now)
            return
        kind = FAIL_RCODES.get(data[3] & 0xF)
        if kind is not None:
            up.stats.error(kind)
            if kind != "servfail":  # SERVFAIL is often about the name, not the server
                self._unhealthy(up, now)
            self._next(inflight, now)
            return
        try:
            answer = self.accept(data, qend, inflight)
        except Malformed as e:
            up.stats.error("malformed")
            log.debug("malformed answer from {up}: {e}", up=up.text, e=e)
            self._unhealthy(up, now)
            self._next(inflight, now)
            return
        up.stats.answers += 1
        if up.fails:
            up.fails = 0
            up.down_until = 0.0
            up.stats.healthy = True
        self._finish(inflight, answer, up)

    def _failed(self, attempt, kind):
        attempt.done = True
        up = attempt.upstream
        up.stats.error(kind)
        now = self.clock.seconds()
        self._unhealthy(up, now)
        inflight, attempt.inflight = attempt.inflight, None
        if self.inflight.get(inflight.key) is inflight:
            self._next(inflight, now)

    def _unhealthy(self, up, now):
        up.fails += 1
        if up.fails >= DOWN_AFTER:
            # The exponent is capped: a long outage counts thousands of
            # failures, and 2.0 * 2 ** 1025 does not fit in a float.
            doublings = min(up.fails - DOWN_AFTER, BACKOFF_DOUBLINGS)
            backoff = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** doublings)
            up.down_until = now + backoff
            if up.stats.healthy:
                log.warn("upstream {up} is not answering; trying the others first "
                         "for {s:.0f}s", up=up.text, s=backoff)
            up.stats.healthy = False

    def _drop(self, inflight):
        """Forget a query in flight whose handling failed (a bug): answer SERVFAIL."""
        if self.inflight.get(inflight.key) is inflight:
            try:
                self._finish(inflight, None, None)
            except Exception:
                self.inflight.pop(inflight.key, None)
                log.failure("answering {key!r} failed", key=inflight.key)

    def _finish(self, inflight, answer, up):
        if self.inflight.get(inflight.key) is inflight:
            del self.inflight[inflight.key]
        self.done(inflight, answer, up)

    def rebase(self, shift):
        """
        The wall clock stepped by ``shift`` seconds (L{sentinel.dns.clocksteps}):
        move the deadlines and start times still waiting with it, and after a
        step back the back-offs (after a step forward one may just end early).
        """
        queue = self._deadlines
        items = list(queue)
        items[0::3] = [deadline + shift for deadline in items[0::3]]
        queue.clear()
        queue.extend(items)
        if shift < 0:
            for up in self.upstreams:
                if up.down_until:
                    up.down_until += shift
        for inflight in self.inflight.values():
            inflight.t0 += shift
            if inflight.attempt is not None:
                inflight.attempt.t0 += shift
        log.info("clock step of {s:.1f}s: {n} upstream timeouts moved with it", s=shift,
                 n=len(items) // 3)

    def _sweep(self):
        queue = self._deadlines
        if self.check_clock is not None:
            self.check_clock()
        now = self.clock.seconds()
        inflights = self.inflight
        pop = queue.popleft
        while queue and queue[0] <= now:
            pop()
            key = pop()
            serial = pop()
            inflight = inflights.get(key)
            if inflight is None:
                continue
            attempt = inflight.attempt
            if attempt is not None and attempt.serial == serial and not attempt.done:
                # One failing timeout must not stop the sweep: this loop
                # is what frees the queries in flight.
                try:
                    attempt.transport.cancel(attempt)
                    attempt.failed("timeout")
                except Exception:
                    log.failure("upstream timeout of {key!r} failed", key=key)
                    self._drop(inflight)
