"""A periodic job logs a failing run and keeps running (sentinel.periodic)."""

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.periodic import looping_call
from tests.ha.fakes import LogCapture


class LoopingCallTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.log = LogCapture(self)
        self.runs = []
        self.errors = []  # what each run does: an exception to raise, or None

    def job(self):
        self.runs.append(self.clock.seconds())
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error

    def start(self, fn):
        loop = looping_call("the test job", fn, self.clock)
        done = loop.start(10, now=True)
        self.addCleanup(lambda: loop.running and loop.stop())
        return loop, done

    def test_a_raising_run_is_logged_and_the_next_runs_on_schedule(self):
        self.errors = [None, ValueError("bad value")]
        loop, done = self.start(self.job)
        self.clock.advance(10)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.clock.advance(10)
        self.assertEqual(self.runs, [0, 10, 20])
        self.assertTrue(loop.running)
        self.assertNoResult(done)
        self.assertIn("the test job failed; it runs again on its schedule", self.log.text())
        self.assertIn("the test job works again (1 run(s) failed)", self.log.text())

    def test_a_failed_deferred_or_coroutine_does_not_stop_it(self):
        results = [fail(KeyError("k")), succeed(None)]

        def deferred_job():
            self.runs.append(self.clock.seconds())
            return results.pop(0) if results else succeed(None)

        loop, _ = self.start(deferred_job)
        self.clock.advance(10)
        self.assertEqual(self.runs, [0, 10])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        loop.stop()

        async def coroutine_job():
            self.runs.append(self.clock.seconds())
            raise RuntimeError("bug")

        self.runs = []
        self.start(coroutine_job)
        self.clock.advance(10)
        self.assertEqual(self.runs, [10, 20])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)  # same failure: once

    def test_a_streak_of_the_same_failure_is_logged_once(self):
        self.errors = [OSError(28, "No space left on device")] * 5 + [OSError(13, "denied")]
        self.start(self.job)
        for _ in range(5):
            self.clock.advance(10)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)  # the two kinds
        self.assertEqual(len(self.runs), 6)

    def test_stopping_leaves_no_call_behind(self):
        self.errors = [ValueError("x")]
        loop, done = self.start(self.job)
        self.flushLoggedErrors(ValueError)
        loop.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(done)
