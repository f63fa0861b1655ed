"""
The policy engine: keeps L{FilterConfig} current from store change
notifications, compiles a new L{Policy} when something relevant changed or
a time boundary (pause expiry, schedule start/end) is reached, and swaps
``policy_source.current`` in one assignment.

When every blocklist set the new policy needs is already merged (a rule,
client, rewrite or pause change), the rebuild runs synchronously inside the
store's commit notification, so the change is enforced before the API call
that made it returns.  New list contents are read from the store (blobs),
decoded and merged in a thread first.

With a L{LastGoodWriter}, every new policy is also saved to the
last-known-good file (debounced, in a thread); when the store cannot be
opened at start (``store_failed`` fires first), that file is loaded and
its policy enforced until the store opens (sentinel/filtering/lastgood.py).
"""

import time

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from sentinel.filtering import compiler, lastgood
from sentinel.filtering.listcache import ListCache, decode_blob, merge, release
from sentinel.filtering.listformat import ListFormatError
from sentinel.periodic import Guarded

log = Logger()
RETRY_DELAY = 5.0
# The list sets the next time boundary needs (a "lists" schedule's window)
# are merged this long before it, so the boundary swaps at once instead of
# after a merge (about a second per million names).
WARM_AHEAD = 60.0


def in_thread(fn, *args):
    return deferToThread(fn, *args)


class PolicyEngine(Service):
    """
    store: IStore; clock: IReactorTime; source: PolicySource; ready:
    callable() -> Deferred firing when the store is usable; run: how to run
    a function off the reactor thread (tests pass a synchronous one);
    lastgood_file: the last-known-good file's path (None: no such file);
    store_failed: callable() -> Deferred firing if the store could not be
    opened (before it is ready).
    """

    def __init__(self, store, clock, source, ready=None, run=in_thread, lastgood_file=None,
                 store_failed=None):
        self.store = store
        self.clock = clock
        self.source = source
        self._ready = ready or (lambda: succeed(None))
        self._run = run
        self._fallback_blobs = None  # {sha: blob} from the last-known-good file
        self.lastgood_path = lastgood_file
        self.writer = None
        if lastgood_file is not None:
            self.writer = lastgood.LastGoodWriter(lastgood_file, clock,
                                                  lambda sha: self.store.get_blob(sha), run)
        self._store_failed = store_failed
        self.fallback = None  # LastGood in force while the store cannot be opened
        self.fallback_problem = None  # why there is none (one line), or None
        self._kept = frozenset()  # blocklist shas the policy in force can use
        self._loading = False
        self.config = compiler.FilterConfig()
        self.cache = ListCache()
        self.loaded = False
        self.unavailable = set()  # shas whose blob is missing or unreadable
        self.policy = None
        self.signature = None
        self.builds = 0
        self.last_build_seconds = 0.0  # compiling + swapping the last snapshot
        self.last_prepare_seconds = 0.0  # reading/decoding/merging new list contents
        self._pending = []  # notifications that arrive while loading
        self._busy = False
        self._dirty = False
        self._timer = None  # the next time boundary
        self._warm_timer = None  # WARM_AHEAD before it
        self._ahead = frozenset()  # list sets merged ahead for that boundary
        self._ahead_for = None  # ...which is this one
        self._load_retry = None  # reading the configuration again after a failure
        self._unsubscribe = None
        self._waiters = []
        self._trim_after_install = False
        self._retry = None
        self._rebuild = Guarded("filtering: compiling the policy", self.rebuild)

    # -- lifecycle ----------------------------------------------------------

    def startService(self):
        super().startService()
        self._unsubscribe = self.store.subscribe(self._changed)
        d = self._ready()
        d.addCallback(lambda _: self._load())
        d.addErrback(lambda f: log.failure("filtering could not start", f))
        if self.lastgood_path is not None and self._store_failed is not None:
            self._store_failed().addCallback(lambda _: self._load_lastgood())

    def stopService(self):
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._cancel_timer()
        for call in (self._retry, self._load_retry, self._warm_timer):
            if call is not None and call.active():
                call.cancel()
        if self.writer is not None:
            self.writer.stop()

    # -- the last-known-good policy ----------------------------------------

    def _load_lastgood(self):
        if self.loaded or not self.running:
            return None
        d = maybeDeferred(self._run, lastgood.read_file, self.lastgood_path)
        d.addCallbacks(self._lastgood_loaded, self._lastgood_failed)
        return d

    def _lastgood_failed(self, failure):
        if failure.check(lastgood.LastGoodError):
            reason = failure.getErrorMessage()
        else:  # a bug: its traceback, once (this runs once per start)
            log.failure("filtering: loading the last-known-good policy failed", failure)
            reason = f"{self.lastgood_path} could not be loaded ({failure.getErrorMessage()})"
        self._no_fallback(reason)

    def _no_fallback(self, reason):
        if self.loaded:
            return
        self.fallback_problem = f"DNS answers without filtering: {reason}"
        log.error("filtering: the store cannot be opened and {reason}: DNS answers without "
                  "filtering until the store opens", reason=reason)

    def _lastgood_loaded(self, saved):
        if saved is None:
            self._no_fallback(f"there is no last-known-good policy ({self.lastgood_path} "
                              f"does not exist)")
            return
        if self.loaded or not self.running:
            return  # the store opened meanwhile
        self.config = saved.config
        self.fallback = saved
        self.fallback_problem = None
        # Contents are decoded once (then kept by the list cache): each
        # is handed out once, so the file's bytes do not stay in memory.
        self._fallback_blobs = saved.blobs
        self.loaded = True
        log.warn("filtering: the store cannot be opened: DNS filters with the last-known-good "
                 "policy from {when} (revision {revision}, {path}) until it opens",
                 when=lastgood.describe_time(saved.saved_at, self.clock.seconds()),
                 revision=saved.config.revision, path=self.lastgood_path)
        self._rebuild_or_retry()

    def meanwhile(self):
        """What DNS does while the store cannot be opened (for its log line)."""
        if self.fallback is not None:
            when = lastgood.describe_time(self.fallback.saved_at, self.clock.seconds())
            return f"DNS filters with the last-known-good policy from {when} meanwhile"
        return "DNS answers without filtering meanwhile"

    def problem(self):
        """One line for /api/health while the policy is not the store's, else None."""
        if self.fallback is not None:
            when = lastgood.describe_time(self.fallback.saved_at, self.clock.seconds())
            return (f"DNS filters with the last-known-good policy from {when} (revision "
                    f"{self.fallback.config.revision}), not the configuration in the store, "
                    f"until the store opens")
        return self.fallback_problem

    # -- the store's configuration -------------------------------------------

    def _load(self):
        if not self.running:
            return None
        self._loading = True  # settled() waits for it, also over a fallback policy
        d = self.store.snapshot(kinds=compiler.KINDS + ("setting",))
        d.addCallbacks(self._loaded, self._load_failed)
        return d

    def _load_failed(self, failure):
        log.warn("filtering: reading the configuration failed ({e}); retrying",
                 e=failure.getErrorMessage())
        # Its own timer: a policy installed meanwhile (the last-known-good
        # one) replaces the boundary timer, and must not cancel this.
        self._load_retry = self.clock.callLater(RETRY_DELAY, self._load)

    def _loaded(self, changes):
        self._loading = False
        if self.fallback is not None:
            log.info("filtering: the store is open: its configuration replaces the "
                     "last-known-good policy")
            self.config = compiler.FilterConfig()
            self.unavailable.clear()
            self.fallback = None
        self.fallback_problem = None
        self._fallback_blobs = None
        for entity in changes.entities:
            self.config.apply(entity)
        self.config.revision = changes.revision
        pending, self._pending = self._pending, None
        for entity in pending:
            if entity.revision > changes.revision:
                self.config.apply(entity)
                self.config.revision = max(self.config.revision, entity.revision)
        self.loaded = True
        self._rebuild_or_retry()

    def _changed(self, revision, entities):
        if self._pending is not None:
            self._pending.extend(entities)
            return
        relevant = False
        for entity in entities:
            relevant = self.config.apply(entity) or relevant
        self.config.revision = max(self.config.revision, revision)
        if relevant:
            self.unavailable.clear()  # new contents may have arrived: try again
            self._rebuild_or_retry()

    # -- building -------------------------------------------------------------

    def rebuild(self):
        """Compile now if possible; otherwise as soon as the lists are ready."""
        if not self.loaded:
            return
        if self._busy:
            self._dirty = True
            return
        self._dirty = False
        plan = compiler.Plan(self.config, self.clock.seconds(), frozenset(self.unavailable))
        missing = [key for key in plan.needed() if key not in self.cache.merged]
        if not missing:
            self._install(plan)
            return
        self._start_prepare(missing)

    def _start_prepare(self, keys):
        """Load and merge ``keys`` (off the reactor thread), then rebuild."""
        self._busy = True
        d = ensureDeferred(self._prepare(keys))

        def failed(failure):
            log.failure("filtering: preparing blocklists failed; retrying", failure)
            return True

        d.addErrback(failed)
        d.addCallback(self._prepared)

    def _prepared(self, transient):
        self._busy = False
        if transient:
            # The store could not be read: keep the snapshot in force (a
            # list must not silently stop being enforced) and try again.
            self._retry_later()
        else:
            self._rebuild_or_retry()

    def _rebuild_or_retry(self):
        """rebuild(); if it raises (a bug), the policy in force stays, the
        failure is logged, and it is tried again RETRY_DELAY later (a time
        boundary missed meanwhile is applied then)."""
        self._rebuild()
        if self._rebuild.failures:
            self._retry_later()

    async def _prepare(self, keys):
        """Load and merge list contents; True if a transient error stopped it."""
        started = time.perf_counter()
        try:
            return await self._load_lists(keys)
        finally:
            self.last_prepare_seconds = time.perf_counter() - started

    async def _load_lists(self, keys):
        for sha in self.cache.missing_shas(keys):
            source = self._fallback_blobs
            try:
                if source is not None:
                    blob = source.pop(sha, None)
                else:
                    blob = await self.store.get_blob(sha)
                if blob is None:
                    raise ListFormatError("contents not in the store (yet)" if source is None
                                          else "contents not in the last-known-good file")
                self.cache.decoded[sha] = await self._run(decode_blob, blob)
            except ListFormatError as e:
                # Nothing will change until the entity does: go on without it.
                log.warn("filtering: blocklist contents {sha} unusable: {e}", sha=sha[:12], e=e)
                if source is self._fallback_blobs:  # not from a source replaced meanwhile
                    self.unavailable.add(sha)
            except Exception as e:
                log.warn("filtering: reading blocklist contents {sha} failed: {e}",
                         sha=sha[:12], e=e)
                return True
        for key in keys:
            if all(sha in self.cache.decoded for _, sha in key):
                self.cache.merged[key] = await self._run(merge, key, self.cache.decoded)
        self._trim_after_install = True
        return False

    def _retry_later(self):
        if self._retry is not None and self._retry.active():
            return

        def retry():
            self._retry = None
            self._rebuild_or_retry()

        self._retry = self.clock.callLater(RETRY_DELAY, retry)

    def _install(self, plan):
        started = time.perf_counter()
        signature = plan.signature()
        if signature != self.signature:
            self.policy = plan.build(self.cache.merged, self.config.revision)
            self.source.current = self.policy
            self.signature = signature
            self.builds += 1
            self.last_build_seconds = time.perf_counter() - started
        elif self.policy is not None:
            self.policy.revision = self.config.revision
        dropped = self.cache.retain(plan.needed() | self._ahead, plan.kept_shas())
        self._kept = frozenset(plan.kept_shas() - self.unavailable)
        if self.writer is not None and self.fallback is None:
            self.writer.changed(self._to_save)
        if dropped or self._trim_after_install:
            # Freed in a thread, a shard or piece at a time: freeing a
            # 1M-name set at once held the GIL as long as merging it.
            trim, self._trim_after_install = self._trim_after_install, False
            self._run(release, dropped, trim)
            del dropped
        self._schedule(plan.next_change)
        self._warm_before(plan)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self.policy)

    def _to_save(self):
        """(config document, blocklist shas) of the policy in force, for the writer."""
        return lastgood.config_doc(self.config), self._kept

    def _schedule(self, when):
        self._cancel_timer()
        if when is not None and self.running:
            delay = max(0.0, when - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._tick)

    def _tick(self):
        self._timer = None
        self._rebuild_or_retry()

    def _warm_before(self, plan):
        """Merge what the next boundary needs WARM_AHEAD before it."""
        if self._warm_timer is not None and self._warm_timer.active():
            self._warm_timer.cancel()
        self._warm_timer = None
        when = plan.next_change
        if when != self._ahead_for:
            self._ahead, self._ahead_for = frozenset(), when
        if when is not None and self.running and plan.lists_schedules():
            delay = max(0.0, when - WARM_AHEAD - self.clock.seconds())
            self._warm_timer = self.clock.callLater(delay, self._warm, when)

    def _warm(self, when):
        self._warm_timer = None
        if not self.loaded or self._busy:
            return  # merged at the boundary then
        try:
            upcoming = compiler.Plan(self.config, when, frozenset(self.unavailable))
        except Exception:  # a bug: the boundary's own rebuild retries and logs it
            return
        # All of them are kept until the boundary, merged now or before.
        self._ahead = frozenset(upcoming.needed())
        missing = [key for key in self._ahead if key not in self.cache.merged]
        if not missing:
            return
        self._start_prepare(missing)  # then rebuilds: that keeps them, and re-arms this

    def clock_stepped(self, step):
        """
        A L{sentinel.dns.clocksteps.ClockSteps} listener.  Schedules follow
        the wall clock: after a step the state is evaluated again at once
        (a step back into or out of a window would otherwise wait for the
        next boundary's timer, which the step moved back with it).
        """
        if self.running:
            self._rebuild_or_retry()

    def _cancel_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def status(self):
        """What the snapshot in force is (for the API and /api/system/status)."""
        policy = self.policy
        info = policy.info if policy is not None else {}
        until = info.get("paused_until")
        return {
            "revision": policy.revision if policy is not None else 0,
            "builds": self.builds,
            "last_build_seconds": round(self.last_build_seconds, 6),
            "last_prepare_seconds": round(self.last_prepare_seconds, 6),
            "blocked_domains": self.cache.domains(),
            "paused_until": None if until in (None, float("inf")) else until,
            "paused": until is not None and until > self.clock.seconds(),
            "next_change": info.get("next_change"),
            "time_zone": info.get("time_zone", ""),
            # The policy comes from the store, or from the last-known-good
            # file while the store cannot be opened (then: when it was saved).
            "source": "store" if self.fallback is None else "last-known-good",
            "last_known_good_from": None if self.fallback is None else self.fallback.saved_at,
            "last_known_good_saved": None if self.writer is None else self.writer.saved_at,
            "last_known_good_saved_revision":
                None if self.writer is None else self.writer.saved_revision,
        }

    def settled(self):
        """A Deferred firing with the policy once no rebuild is pending."""
        if (self.loaded and not self._loading and not self._busy and not self._dirty
                and self.policy is not None):
            return succeed(self.policy)
        d = Deferred()
        self._waiters.append(d)
        return d
