"""
A pause keeps its length when this node's wall clock steps.

A pause is stored with an absolute end (``setting``/``protection``
``until``, epoch seconds): every node ends it at that instant.  The end is
computed from this node's clock when the pause is asked for (``now + 10
minutes``); when that clock was wrong and is then stepped right (NTP after
a boot with a stale clock, an admin fixing it: L{sentinel.dns.clocksteps}),
the stored end is off by the step.  A clock that ran an hour ahead and is
stepped back would leave filtering paused for an hour and ten minutes; a
pause that had ended would even start again.

L{PauseClock} (leader or standalone only: it writes the synced setting)
hears of each step and moves the end of a pause *this process* set by the
same step, so the pause lasts what was asked for, in the time that really
passes; when such a pause ends it is stored as ended (``paused: false``),
so no later step back brings it back, and followers end it with the leader
even when their clocks lag.  A pause this process did not set (set before a restart, or by
another node) came from a clock this step says nothing about: it is left
alone.
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from sentinel.filtering import settings

log = Logger()
RETRY_DELAY = 5.0  # after a failed write (the store busy or down)


class PauseClock(Service):
    """ready: callable() -> Deferred firing when the store is usable."""

    def __init__(self, store, clock, ready=None):
        self.store = store
        self.clock = clock
        self._ready = ready or (lambda: succeed(None))
        self._mine = None  # the end of the pause in force that this process watches
        self._own = False  # _mine was computed from this clock (set here): steps move it
        self._expiry = None  # timer: store the pause as ended when it ends
        self._writing = succeed(None)
        self._writes = 0  # in progress
        # ClockSteps.check: a step forward runs the expiry timer at once,
        # before the watcher's next tick; asking first tells a step from
        # the pause's real end.
        self.check_clock = None

    def startService(self):
        super().startService()
        # Started again after a time as follower: what was stored meanwhile
        # is read afresh.
        self._mine, self._own = None, False
        d = self._ready()
        d.addCallback(lambda _: self.store.get("setting", settings.PROTECTION))
        d.addCallbacks(self._adopt, lambda f: log.info(
            "protection pause: not read at start ({e})", e=f.getErrorMessage()))
        self._writing = d  # idle() waits for this read too

    def _adopt(self, entity):
        # A pause set before a restart, or by the leader before a failover:
        # stored as ended when it ends, like our own (its end is not moved
        # by steps of this clock, which did not compute it).
        data = entity.data if entity is not None else None
        if (not self.running or self._mine is not None or not isinstance(data, dict)
                or not data.get("paused")):
            return
        until = data.get("until")
        if isinstance(until, (int, float)) and not isinstance(until, bool):
            self._mine, self._own = until, False
            self._arm()

    def stopService(self):
        super().stopService()
        self._disarm()

    def wrote(self, until):
        """The protection API stored a pause ending at ``until`` (None: none, or until resumed)."""
        self._mine, self._own = until, True
        self._arm()

    def idle(self):
        """A Deferred firing once the writes started so far are done."""
        d = Deferred()
        self._writing.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def clock_stepped(self, step):
        """A L{sentinel.dns.clocksteps.ClockSteps} listener; returns the write's Deferred."""
        mine = self._mine
        if not self.running or mine is None or not self._own:
            return None
        new = mine + step
        return self._replace(mine, new if new > self.clock.seconds() else None,
                             f"its end moved by {step:.1f}s with the clock step")

    def _arm(self):
        self._disarm()
        if self.running and self._mine is not None:
            delay = max(0.0, self._mine - self.clock.seconds())
            self._expiry = self.clock.callLater(delay, self._expire)

    def _disarm(self):
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _expire(self):
        # Stored as ended, so a later step back of the clock (on any node)
        # cannot bring it back; followers end it with the leader too.
        self._expiry = None
        if self.check_clock is not None:
            self.check_clock()  # a step found here moves the end (clock_stepped)
        mine = self._mine
        if mine is None or self._writes:
            return  # a write in progress re-arms this when done
        if mine > self.clock.seconds():  # early: a clock step moved this timer
            self._arm()
            return
        self._replace(mine, None, "it ended")

    def _replace(self, mine, until, why):
        """Store our pause ending at ``mine`` as ending at ``until`` (None: ended)."""

        async def tx(ctx):
            entity = await ctx.get("setting", settings.PROTECTION)
            data = entity.data if entity is not None else None
            if not isinstance(data, dict) or not data.get("paused") or data.get("until") != mine:
                return False  # resumed, replaced or synced over meanwhile: not ours any more
            await ctx.put("setting", settings.PROTECTION,
                          {"paused": until is not None, "until": until})
            return True

        def done(ours):
            self._writes -= 1
            if self._mine == mine:  # no new pause meanwhile
                self._mine = until if ours else None
                self._arm()
            if ours:
                log.info("protection pause: {why}", why=why)

        def failed(failure):
            self._writes -= 1
            log.warn("protection pause: storing that {why} failed ({e}); the end is tried "
                     "again in {delay:.0f}s", why=why, e=failure.getErrorMessage(),
                     delay=RETRY_DELAY)
            if self._mine == mine and self.running:
                self._disarm()
                self._expiry = self.clock.callLater(RETRY_DELAY, self._expire)

        self._writes += 1
        d = self.store.transact(tx)
        d.addCallbacks(done, failed)
        self._writing = d
        return d
