"""
A pause keeps its length when this node's wall clock steps.

A pause is stored with an absolute end (``setting``/``protection``
``until``, epoch seconds): every node ends it at that instant.  The end is
computed from this node's clock when the pause is asked for (``now + 10
minutes``); when that clock was wrong and is then stepped right (NTP after
a boot with a stale clock, an admin fixing it: L{sentinel.dns.clocksteps}),
the stored end is off by the step.  A clock that ran an hour ahead and is
stepped back would leave filtering paused for an hour and ten minutes.

L{PauseClock} (leader or standalone only: it writes the synced setting)
hears of each step and moves the end of a pause *this process* set by the
same step, so the pause lasts what was asked for, in the time that really
passes.  A pause this process did not set (set before a restart, or by
another node) came from a clock this step says nothing about: it is left
alone.
"""

from twisted.application.service import Service
from twisted.logger import Logger

from sentinel.filtering import settings

log = Logger()


class PauseClock(Service):
    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self._mine = None  # the end of the last pause this process stored

    def wrote(self, until):
        """The protection API stored a pause ending at ``until`` (None: none, or until resumed)."""
        self._mine = until

    def clock_stepped(self, step):
        """A L{sentinel.dns.clocksteps.ClockSteps} listener; returns the write's Deferred."""
        mine = self._mine
        if not self.running or mine is None:
            return None

        async def rebase(ctx):
            entity = await ctx.get("setting", settings.PROTECTION)
            data = entity.data if entity is not None else None
            if not isinstance(data, dict) or not data.get("paused") or data.get("until") != mine:
                return None  # resumed, replaced or synced over meanwhile
            if mine <= self.clock.seconds() - step:
                return None  # it had ended before the step
            await ctx.put("setting", settings.PROTECTION, {"paused": True, "until": mine + step})
            return mine + step

        def done(until):
            if until is not None:
                if self._mine == mine:
                    self._mine = until
                log.info("protection pause: the end moved by {step:.1f}s with the clock step",
                         step=step)

        d = self.store.transact(rebase)
        d.addCallbacks(done, lambda f: log.failure(
            "protection pause: moving its end with the clock step failed", f))
        return d
