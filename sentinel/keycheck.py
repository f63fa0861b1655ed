"""
Does the node key open what is sealed in the database?

A node key that was lost and re-created, or replaced by another node's,
leaves every sealed value (secrets, the cluster secret, the VRRP password)
unreadable.  The owners of those values cope one by one (a secret reads as
unset, the cluster membership as standalone); this check says it once and
plainly: one log line naming the key file and what cannot be read, and a
``problem`` for /api/health, until the values are readable again (the
original key restored) or have been set again under this key.  Nothing is
changed or deleted here.

Sources: callables ``source(ctx) -> [(label, sealed_text, aad)]`` run in
one store read, registered by each owner of sealed values.
"""

from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sentinel.crypto import DecryptError
from sentinel.store import StoreUnavailable

log = Logger()

RECHECK = 60.0  # seconds; values may be set again through the API meanwhile


def unreadable(box, items):
    """The labels of the sealed values this box cannot open."""
    bad = []
    for label, sealed, aad in items:
        try:
            box.decrypt_text(sealed, aad)
        except (DecryptError, TypeError, ValueError, AttributeError):
            bad.append(label)
    return bad


def describe(key_path, labels):
    """The one-line explanation (None when everything opens)."""
    if not labels:
        return None
    shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
    return (f"the node key {key_path} cannot decrypt {len(labels)} stored value(s) ({shown}): "
            f"it is not the key they were sealed with (node.key lost and re-created, or "
            f"replaced?). Restore the original node.key and restart (nothing was changed or "
            f"deleted), or set them again under this key")


class KeyCheck:
    def __init__(self, store, box, key_path, sources):
        self.store = store
        self._box = box
        self._key_path = key_path
        self._sources = sources
        self.problem = None
        self.checked = False

    async def collect(self, ctx):
        items = []
        for source in self._sources:
            items.extend(await source(ctx))
        return items

    async def run(self):
        items = await self.store.read(self.collect)
        problem = describe(self._key_path, unreadable(self._box, items))
        if problem != self.problem or not self.checked:
            if problem:
                log.error("{problem}", problem=problem)
            elif self.checked:
                log.info("the node key {path} decrypts every stored value again",
                         path=self._key_path)
            else:
                log.info("the node key {path} decrypts the {n} sealed value(s) stored",
                         path=self._key_path, n=len(items))
        self.problem = problem
        self.checked = True
        return problem


class KeyCheckService(Service):
    """Runs the check when the store has opened, then every RECHECK seconds.
    when_ready: callable() -> Deferred firing when the store is open."""

    def __init__(self, check, when_ready, clock):
        self.check = check
        self._when_ready = when_ready
        self._clock = clock
        self._loop = None
        self._unsubscribe = None

    def startService(self):
        super().startService()
        self._when_ready().addCallback(self._opened)

    def _opened(self, _):
        if not self.running:
            return
        # A secret set again under this key can clear the problem at once.
        self._unsubscribe = self.check.store.subscribe(self._changed)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(RECHECK, now=True)

    def _tick(self):
        d = ensureDeferred(self.check.run())
        d.addErrback(lambda f: None if f.check(StoreUnavailable) else log.failure(
            "checking the node key", f))
        return d

    def _changed(self, _revision, entities):
        if any(e.kind == "secret" for e in entities):
            self._tick()

    def stopService(self):
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
