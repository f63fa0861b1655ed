"""
Periodic jobs that survive a failing run.

A twisted ``LoopingCall`` stops for good when its function raises or its
Deferred fails: one unexpected error (a bug, a store error, a bad value)
would leave the feature dead until a restart.  Every periodic job is
started with L{looping_call}, whose function is wrapped in L{Guarded}: a
failing run is logged and the next one comes on the normal schedule.

The first failure of a streak is logged with its traceback; while the job
keeps failing the same way it says nothing more (a job that runs five
times a second must not fill the log), and when a run works again it
says so once, with the number of runs that failed.
"""

from inspect import iscoroutine

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


class Guarded:
    """
    ``fn`` wrapped so that a call never raises and its Deferred (or
    coroutine: it is run as a Deferred) never fails.  A synchronous result
    is returned as it is; a Deferred's result is dropped (None).
    """

    def __init__(self, what, fn):
        self.what = what  # names the job in the log: "the blocklist refresh"
        self.fn = fn
        self.failures = 0  # runs that failed in a row
        self._logged = None  # (type, message) of the failure last logged

    def __call__(self, *args, **kwargs):
        try:
            result = self.fn(*args, **kwargs)
        except Exception:
            self._failed(Failure())
            return None
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            return result.addCallbacks(self._worked, self._failed)
        self._worked(None)
        return result

    def _worked(self, _):
        if self.failures:
            log.info("{what} works again ({n} run(s) failed)", what=self.what, n=self.failures)
            self.failures = 0
            self._logged = None

    def _failed(self, failure):
        self.failures += 1
        seen = (failure.type, failure.getErrorMessage())
        if seen != self._logged:
            self._logged = seen
            log.failure("{what} failed; it runs again on its schedule", failure,
                        what=self.what)
        return None


def looping_call(what, fn, clock):
    """A LoopingCall on ``clock`` of ``fn`` wrapped in L{Guarded} (start and
    stop it as usual; its Deferred never fails)."""
    loop = LoopingCall(Guarded(what, fn))
    loop.clock = clock
    return loop
