"""
The store contract.  Every method returns a Deferred.  Implementations:
L{sentinel.store.store.Store} over L{SqliteDatabase} (embedded default) or
L{PostgresDatabase} (txpostgres); one contract suite tests both.
"""

from zope.interface import Attribute, Interface


class IStore(Interface):
    dialect = Attribute("'sqlite' or 'postgres'")
    available = Attribute("False while the database cannot be reached")

    def start():
        """Connect and apply schema migrations (retrying while unreachable)."""

    def stop():
        """Close the database."""

    def subscribe(observer):
        """
        Call observer(revision, changed_entities) after every committed
        configuration change.  Returns a callable that unsubscribes.
        """

    def transact(fn, *args):
        """
        Run ``fn(ctx, *args)`` (a coroutine function; ctx is a ConfigTx) in
        one write transaction: all or nothing.  Any change bumps the
        configuration revision exactly once.
        """

    def read(fn, *args):
        """Run ``fn(ctx, *args)`` in one consistent read-only transaction."""

    def revision():
        """The current configuration revision (int)."""

    def get(kind, key):
        """The live Entity, or None."""

    def list(kind):
        """Live Entities of a kind, integer keys in numeric order."""

    def put(kind, key, data):
        """Insert or replace; equal data is not a change."""

    def create(kind, data):
        """Insert under the next integer key of the kind (never reused)."""

    def delete(kind, key):
        """Delete (leaving a tombstone); False if it did not exist."""

    def changes_since(revision, kinds=None):
        """Changes: the current revision and every entity changed after
        ``revision``, tombstones included."""

    def snapshot(kinds=None):
        """Changes: the current revision and every live entity."""

    def put_blob(data):
        """Store bytes (or a buffer such as a memoryview) content-addressed;
        returns the sha256 hex."""

    def get_blob(sha):
        """Bytes or None."""

    def get_local(key, default=None):
        """Node-local JSON value (never synced)."""

    def set_local(key, value):
        """Set a node-local JSON value."""

    def delete_local(key):
        """Remove a node-local value."""

    def append_query_logs(rows):
        """Insert query-log rows (tuples in QUERY_LOG_COLUMNS order)."""

    def query_logs(flt):
        """Rows (dicts) matching a QueryLogFilter, newest first."""

    def prune_query_logs(before_ts, max_rows=None):
        """Retention: drop rows older than before_ts, keep at most max_rows."""

    def count_query_logs():
        """Number of rows in the query log."""

    def add_notification(level, kind, message):
        """Add to the feed; returns its id."""

    def list_notifications(limit=50, before_id=None, unread_only=False):
        """Newest first."""

    def unread_notifications():
        """Count of unread notifications."""

    def mark_notifications_read(ids=None):
        """Mark some (or all) read; returns how many changed."""

    def prune_notifications(before_ts):
        """Drop notifications older than before_ts."""

    def remember_nonce(nonce, expires):
        """True if new (now remembered until expires), False if replayed."""

    def prune_nonces(now):
        """Forget nonces that expired."""
