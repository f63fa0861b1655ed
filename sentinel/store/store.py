"""
The store: one object, backed by SQLite or PostgreSQL, through which the
daemon reads and changes everything it persists.  See L{IStore} for the
contract; L{tests.test_store} runs it against both backends.
"""

from datetime import datetime, timezone

from twisted.internet.defer import ensureDeferred, fail
from twisted.logger import Logger
from zope.interface import implementer

from sentinel.store import records
from sentinel.store.database import StoreUnavailable, open_database
from sentinel.store.entities import ConfigTx
from sentinel.store.interface import IStore
from sentinel.store.migrations import migrate

log = Logger()


@implementer(IStore)
class Store:
    def __init__(self, database, clock):
        self.db = database
        self._clock = clock
        self._observers = []
        self._migrated = False
        self._heard = None  # the newest revision observers have heard of
        self._catch_up_call = None

    @classmethod
    def from_url(cls, url, reactor):
        return cls(open_database(url, reactor), reactor)

    @property
    def dialect(self):
        return self.db.dialect

    @property
    def available(self):
        """True once open and migrated, while the database is reachable."""
        return self._migrated and self.db.available

    def start(self):
        return ensureDeferred(self._start())

    async def _start(self):
        await self.db.start()
        now = datetime.fromtimestamp(self._clock.seconds(), timezone.utc).isoformat()
        try:
            await migrate(self.db, now)
            # A read-only database (owned by another user, a read-only mount)
            # opens and reads fine; say so now instead of failing every write.
            await self.db.run(_write_probe)
        except BaseException:
            # Connections SQLite opened read-only stay so: the next attempt
            # opens new ones (and sees a fixed file).
            await self.db.stop()
            raise
        self._heard = await self.db.run(
            lambda tx: ConfigTx(tx, self._clock.seconds).current_revision(), write=False)
        self._migrated = True
        self.db.serving = True  # from now on the backend reports run-time failures itself

    def stop(self):
        self._migrated = False
        self.db.serving = False
        if self._catch_up_call is not None and self._catch_up_call.active():
            self._catch_up_call.cancel()
        self._catch_up_call = None
        return self.db.stop()

    def _run(self, fn, *args, write=True):
        if not self._migrated:
            return fail(StoreUnavailable("the store is still opening"))
        return self.db.run(fn, *args, write=write)

    # -- change notification -----------------------------------------------

    def subscribe(self, observer):
        """observer(revision, changed_entities) after each committed change."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _notify(self, ctx):
        if ctx.revision is None:
            return
        self._tell(ctx.revision, ctx.changed)

    def _tell(self, revision, changed):
        self._heard = max(self._heard or 0, revision)
        for observer in list(self._observers):
            try:
                observer(revision, tuple(changed))
            except Exception:
                log.failure("store observer failed")

    def _unsure(self, failure):
        """
        A write failed with StoreUnavailable: if the connection broke
        around its COMMIT it may have been saved all the same.  Observers
        (the policy DNS enforces, cluster long-polls) then hear of whatever
        was committed since the last revision they heard of, once the
        store answers again; otherwise a saved rule would not be enforced
        until the next change.
        """
        if failure.check(StoreUnavailable) and self._catch_up_call is None \
                and self._heard is not None:
            self._catch_up_call = self._clock.callLater(0, self._catch_up)
        return failure

    def _catch_up(self):
        since = self._heard

        def found(changes):
            self._catch_up_call = None
            if changes.entities:
                self._tell(max(changes.revision, self._heard), changes.entities)

        def failed(failure):
            failure.trap(StoreUnavailable)
            if self._migrated:
                self._catch_up_call = self._clock.callLater(1.0, self._catch_up)
            else:
                self._catch_up_call = None

        self.read(lambda ctx: ctx.changes_since(since)).addCallbacks(found, failed)

    # -- transactions --------------------------------------------------------

    def transact(self, fn, *args):
        """
        Run ``await fn(ctx, *args)`` in one write transaction (ctx is a
        L{ConfigTx}); all or nothing.  Observers hear of the new revision
        after the commit.
        """

        async def body(tx):
            ctx = ConfigTx(tx, self._clock.seconds)
            await ctx.lock()
            result = await fn(ctx, *args)
            return ctx, result

        def committed(pair):
            ctx, result = pair
            self._notify(ctx)
            return result

        return self._run(body, write=True).addCallbacks(committed, self._unsure)

    def read(self, fn, *args):
        """Run ``await fn(ctx, *args)`` in one read-only transaction."""

        async def body(tx):
            return await fn(ConfigTx(tx, self._clock.seconds), *args)

        return self._run(body, write=False)

    # -- configuration conveniences -------------------------------------------

    def revision(self):
        return self.read(lambda ctx: ctx.current_revision())

    def get(self, kind, key):
        return self.read(lambda ctx: ctx.get(kind, key))

    def list(self, kind):
        return self.read(lambda ctx: ctx.list(kind))

    def put(self, kind, key, data):
        return self.transact(lambda ctx: ctx.put(kind, key, data))

    def create(self, kind, data):
        return self.transact(lambda ctx: ctx.create(kind, data))

    def delete(self, kind, key):
        return self.transact(lambda ctx: ctx.delete(kind, key))

    def changes_since(self, revision, kinds=None):
        return self.read(lambda ctx: ctx.changes_since(revision, kinds))

    def snapshot(self, kinds=None):
        return self.read(lambda ctx: ctx.snapshot(kinds))

    def put_blob(self, data):
        return self.transact(lambda ctx: ctx.put_blob(data))

    def get_blob(self, sha):
        return self.read(lambda ctx: ctx.get_blob(sha))

    def get_local(self, key, default=None):
        return self.read(lambda ctx: ctx.get_local(key, default))

    def set_local(self, key, value):
        return self.transact(lambda ctx: ctx.set_local(key, value))

    def delete_local(self, key):
        return self.transact(lambda ctx: ctx.delete_local(key))

    # -- node-local records ---------------------------------------------------

    def _records(self, fn, *args, write=True):
        return self._run(fn, *args, write=write)

    def append_query_logs(self, rows):
        return self._records(records.append_query_logs, rows)

    def query_logs(self, flt):
        return self._records(records.query_logs, flt, write=False)

    def prune_query_logs(self, before_ts, max_rows=None):
        return self._records(records.prune_query_logs, before_ts, max_rows)

    def count_query_logs(self):
        return self._records(records.count_query_logs, write=False)

    def add_notification(self, level, kind, message):
        return self._records(
            records.add_notification, self._clock.seconds(), level, kind, message
        )

    def list_notifications(self, limit=50, before_id=None, unread_only=False):
        return self._records(
            records.list_notifications, limit, before_id, unread_only, write=False
        )

    def unread_notifications(self):
        return self._records(records.unread_notifications, write=False)

    def mark_notifications_read(self, ids=None):
        return self._records(records.mark_notifications_read, ids)

    def prune_notifications(self, before_ts):
        return self._records(records.prune_notifications, before_ts)

    def remember_nonce(self, nonce, expires):
        return self._records(records.remember_nonce, nonce, expires)

    def prune_nonces(self, now):
        return self._records(records.prune_nonces, now)


async def _write_probe(tx):
    """A write that changes nothing: fails on a read-only database."""
    await tx.execute("DELETE FROM nonces WHERE 1 = 0")
