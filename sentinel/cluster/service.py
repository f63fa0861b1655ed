"""
The cluster's place in the service tree: loads the membership once the
store is up, feeds the role machine from it and from the role-file
watcher, and starts/stops the leader-only and follower-only groups.
"""

from twisted.application.service import MultiService
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.logger import Logger

log = Logger()


class ServiceGroups:
    """apply(name): stop every other group, then start ``name``."""

    def __init__(self, groups):
        self.groups = dict(groups)

    async def _apply(self, target):
        for name, group in self.groups.items():
            if name != target and group.running:
                await maybeDeferred(group.stopService)
        group = self.groups[target]
        if not group.running:
            group.startService()

    def apply(self, target):
        return ensureDeferred(self._apply(target))

    def running(self):
        return [name for name, g in self.groups.items() if g.running]

    def stop_all(self):
        from twisted.internet.defer import gatherResults

        return gatherResults([maybeDeferred(g.stopService)
                              for g in self.groups.values() if g.running])


class ClusterService(MultiService):
    """
    Children: the role-file watcher.  store_ready: callable() -> Deferred
    that fires when the store is usable.
    """

    retry_delays = (1.0, 2.0, 5.0, 10.0)

    def __init__(self, state, machine, groups, store_ready, clock):
        super().__init__()
        self._state = state
        self._machine = machine
        self._groups = groups
        self._store_ready = store_ready
        self._clock = clock
        self._attempts = 0
        self._retry = None
        state.listen(lambda membership: machine.set_configured(membership.role))

    def startService(self):
        super().startService()
        d = maybeDeferred(self._store_ready)
        d.addCallback(lambda _: self._load())
        d.addErrback(lambda f: log.failure("cluster: store did not start", f))

    def _load(self):
        if not self.running:
            return
        d = ensureDeferred(self._state.load())
        d.addErrback(self._load_failed)
        return d

    def _load_failed(self, failure):
        delay = self.retry_delays[min(self._attempts, len(self.retry_delays) - 1)]
        self._attempts += 1
        log.warn("cluster: cannot load the cluster state ({err}); retrying in {d} s",
                 err=failure.getErrorMessage(), d=delay)
        if self.running:
            self._retry = self._clock.callLater(delay, self._load)

    def stopService(self):
        self._machine.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        d = maybeDeferred(super().stopService)
        d.addCallback(lambda _: self._groups.stop_all())
        return d
