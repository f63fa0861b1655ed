"""
Configuration entities and the transaction object that changes them.

Every synced piece of configuration is an L{Entity}: a kind (``setting``,
``secret``, ``user``, ``client``, ``rule``, ...), a key, the configuration
revision that last changed it, and JSON data.  A deletion leaves a
tombstone (data None) carrying the revision of the deletion, so
``changes_since(r)`` describes every change after revision ``r``,
deletions included.

A write transaction bumps the revision once, on its first real change, and
stamps every row it changes with the new revision.  Writing data equal to
what is stored is not a change: no revision bump, nothing for followers to
apply, no policy rebuild.
"""

import json

import attr

from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread

from sentinel.store.blobhash import sha256_hex


# Blob contents larger than this go to and from PostgreSQL in pieces of it.
BLOB_PIECE = 128 * 1024


class ConflictError(Exception):
    """A unique constraint the caller asked for is violated."""


@attr.s(frozen=True, auto_attribs=True, slots=True)
class Entity:
    kind: str
    key: str
    revision: int
    data: object  # dict (or any JSON value); None for a tombstone

    @property
    def deleted(self) -> bool:
        return self.data is None


@attr.s(frozen=True, auto_attribs=True)
class Changes:
    revision: int  # the store's revision when read
    entities: tuple  # Entity, tombstones included, ordered by revision


def encode(data) -> str:
    """Canonical JSON: equal data gives equal text (change detection)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _decode(text):
    return None if text is None else json.loads(text)


def _entity(row):
    kind, key, revision, data = row
    return Entity(kind, key, int(revision), _decode(data))


_COLUMNS = "kind, key, revision, data"
INLINE_ROWS = 256  # more rows than this are decoded in a thread
PAGE_ROWS = 1000  # PostgreSQL: rows per statement of a long read (parsed on the reactor)


def _entities(rows, kinds=None):
    """
    Entities of ``rows`` (a tuple), those of ``kinds`` only if given.  Many
    rows are decoded in a thread: 50,000 rules took the reactor thread (and
    so DNS) ~200 ms to decode, in one go.  json.loads lets the GIL go
    between rows, so the reactor runs meanwhile.
    """
    def decode():
        return tuple(e for e in map(_entity, rows) if kinds is None or e.kind in kinds)

    if len(rows) <= INLINE_ROWS:
        return succeed(decode())
    return deferToThread(decode)


class ConfigTx:
    """The configuration operations available inside one store transaction."""

    def __init__(self, tx, now):
        self._tx = tx
        self._now = now
        self.revision = None  # the new revision once something changed
        self.changed = []  # Entities written in this transaction

    @property
    def dialect(self):
        return self._tx.dialect

    async def lock(self):
        """
        Take the writer lock (PostgreSQL; SQLite's BEGIN IMMEDIATE already
        holds it) so reads made to check a constraint stay true until commit.
        """
        if self._tx.dialect == "postgres":
            await self._tx.execute("SELECT value FROM revision WHERE id = 1 FOR UPDATE")

    async def current_revision(self) -> int:
        rows = await self._tx.execute("SELECT value FROM revision WHERE id = 1")
        return int(rows[0][0])

    async def _bump(self):
        if self.revision is None:
            rows = await self._tx.execute(
                "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value"
            )
            self.revision = int(rows[0][0])
        return self.revision

    async def get(self, kind, key):
        rows = await self._tx.execute(
            f"SELECT {_COLUMNS} FROM config WHERE kind = ? AND key = ? AND data IS NOT NULL",
            (kind, str(key)),
        )
        return _entity(rows[0]) if rows else None

    async def list(self, kind):
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM config WHERE kind = ? AND data IS NOT NULL",
            ("kind", "key"), (kind,))
        entities = list(await _entities(rows))
        entities.sort(key=_sort_key)
        return entities

    async def put(self, kind, key, data):
        """Insert or replace; returns the entity (unchanged if equal)."""
        if data is None:
            raise ValueError("use delete() to remove an entity")
        key, text = str(key), encode(data)
        rows = await self._tx.execute(
            "SELECT revision, data FROM config WHERE kind = ? AND key = ?", (kind, key)
        )
        if rows and rows[0][1] == text:
            return Entity(kind, key, int(rows[0][0]), data)
        revision = await self._bump()
        await self._tx.execute(
            "INSERT INTO config (kind, key, revision, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET revision = excluded.revision, "
            "data = excluded.data",
            (kind, key, revision, text),
        )
        entity = Entity(kind, key, revision, json.loads(text))
        self.changed.append(entity)
        return entity

    async def create(self, kind, data):
        """Insert with the next integer key of this kind (never reused)."""
        await self._bump()  # also serialises id allocation on PostgreSQL
        key = await self.max_key(kind) + 1
        return await self.put(kind, str(key), data)

    def _int_key(self):
        # Keys that are integers (at most 18 digits: they fit a BIGINT).
        if self._tx.dialect == "postgres":
            return "key ~ '^[0-9]{1,18}$'"
        return "key <> '' AND key NOT GLOB '*[^0-9]*' AND LENGTH(key) <= 18"

    async def max_key(self, kind) -> int:
        """The highest integer key of ``kind`` ever used here (live or
        deleted), 0 if none: create() allocates above it."""
        rows = await self._tx.execute(
            f"SELECT MAX(CAST(key AS BIGINT)) FROM config WHERE kind = ? AND {self._int_key()}",
            (kind,),
        )
        return int(rows[0][0] or 0)

    async def key_marks(self) -> dict:
        """{kind: max_key(kind)} for every kind with integer keys."""
        rows = await self._tx.execute(
            f"SELECT kind, MAX(CAST(key AS BIGINT)) FROM config WHERE {self._int_key()} "
            "GROUP BY kind"
        )
        return {kind: int(top) for kind, top in rows if top}

    async def reserve(self, kind, key) -> bool:
        """
        Make sure create() never hands out integer ``key`` (or a lower one)
        of ``kind`` here: if no key that high is known, record a tombstone
        for it (a change: the revision is bumped).  For keys allocated
        elsewhere (cluster sync).  Returns True if a tombstone was written.
        """
        key = int(key)
        if not 0 < key < 10**18:
            raise ValueError(f"cannot reserve {kind} key {key}")
        if await self.max_key(kind) >= key:
            return False
        revision = await self._bump()
        await self._tx.execute(
            "INSERT INTO config (kind, key, revision, data) VALUES (?, ?, ?, NULL) "
            "ON CONFLICT (kind, key) DO NOTHING",
            (kind, str(key), revision),
        )
        self.changed.append(Entity(kind, str(key), revision, None))
        return True

    async def delete(self, kind, key):
        """Delete, leaving a tombstone. Returns False if there was nothing."""
        key = str(key)
        rows = await self._tx.execute(
            "SELECT 1 FROM config WHERE kind = ? AND key = ? AND data IS NOT NULL",
            (kind, key),
        )
        if not rows:
            return False
        revision = await self._bump()
        await self._tx.execute(
            "UPDATE config SET revision = ?, data = NULL WHERE kind = ? AND key = ?",
            (revision, kind, key),
        )
        self.changed.append(Entity(kind, key, revision, None))
        return True

    async def changes_since(self, revision, kinds=None):
        rows = await self._rows(f"SELECT {_COLUMNS} FROM config WHERE revision > ?",
                                ("revision", "kind", "key"), (revision,))
        current = await self.current_revision()
        return Changes(current, await _entities(rows, kinds))

    async def snapshot(self, kinds=None):
        rows = await self._rows(
            f"SELECT {_COLUMNS} FROM config WHERE data IS NOT NULL", ("kind", "key"))
        current = await self.current_revision()
        return Changes(current, await _entities(rows, kinds))

    async def _rows(self, select, order, params=()):
        """
        The rows of ``select`` (no ORDER BY; ``order``: the columns of a
        unique key to sort by).  On PostgreSQL txpostgres parses results on
        the reactor thread, so a long read is made of statements of
        L{PAGE_ROWS} rows (in one transaction: one snapshot).
        """
        columns = ", ".join(order)
        if self._tx.dialect != "postgres":
            return await self._tx.execute(f"{select} ORDER BY {columns}", params)
        rows = await self._tx.execute(f"{select} ORDER BY {columns} LIMIT {PAGE_ROWS}", params)
        out = list(rows)
        where = " AND " if " WHERE " in select else " WHERE "
        while len(rows) == PAGE_ROWS:
            positions = [_COLUMNS.split(", ").index(c) for c in order]
            last = tuple(out[-1][i] for i in positions)
            rows = await self._tx.execute(
                f"{select}{where}({columns}) > ({', '.join('?' * len(order))}) "
                f"ORDER BY {columns} LIMIT {PAGE_ROWS}", tuple(params) + last)
            out.extend(rows)
        return tuple(out)

    # -- blobs ------------------------------------------------------------

    async def put_blob(self, data: bytes) -> str:
        sha = await sha256_hex(data)  # large contents: in a thread, not the reactor's
        if self._tx.dialect == "postgres" and len(data) > BLOB_PIECE:
            await self._put_blob_in_pieces(sha, data)
            return sha
        await self._tx.execute(
            "INSERT INTO blobs (sha256, data, size, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (sha256) DO NOTHING",
            (sha, data, len(data), self._now()),
        )
        return sha

    async def _put_blob_in_pieces(self, sha, data):
        """
        PostgreSQL: txpostgres quotes every parameter (and parses every
        result) on the reactor thread, ~13 ms per MB of bytea: a 2M-name
        list (14 MB) held DNS for 40-300 ms in one statement.  So large
        contents travel in pieces of L{BLOB_PIECE} bytes (~2 ms each),
        gathered in a temporary table of this session and put together by
        the server.
        """
        if await self._tx.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha,)):
            return
        await self._tx.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS blob_pieces (n INTEGER PRIMARY KEY, "
            "piece BYTEA NOT NULL) ON COMMIT DELETE ROWS")
        await self._tx.execute("DELETE FROM blob_pieces")
        view = memoryview(data)
        for n, at in enumerate(range(0, len(data), BLOB_PIECE)):
            await self._tx.execute("INSERT INTO blob_pieces (n, piece) VALUES (?, ?)",
                                   (n, view[at:at + BLOB_PIECE]))
        await self._tx.execute(
            "INSERT INTO blobs (sha256, data, size, created_at) "
            "SELECT ?, string_agg(piece, ''::bytea ORDER BY n), ?, ? FROM blob_pieces "
            "ON CONFLICT (sha256) DO NOTHING",
            (sha, len(data), self._now()))
        await self._tx.execute("DELETE FROM blob_pieces")

    async def get_blob(self, sha):
        if self._tx.dialect == "postgres":
            rows = await self._tx.execute("SELECT size FROM blobs WHERE sha256 = ?", (sha,))
            if not rows:
                return None
            if rows[0][0] > BLOB_PIECE:  # in pieces, as above (parsing is on the reactor)
                pieces = []
                for at in range(0, rows[0][0], BLOB_PIECE):
                    piece = await self._tx.execute(
                        "SELECT substring(data FROM ? FOR ?) FROM blobs WHERE sha256 = ?",
                        (at + 1, BLOB_PIECE, sha))
                    pieces.append(piece[0][0])
                # bytes.join copies without the GIL: in a thread, DNS does
                # not wait for the ~10 ms of copying 14 MB.
                return await deferToThread(b"".join, pieces)
        rows = await self._tx.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha,))
        return bytes(rows[0][0]) if rows else None

    async def blob_shas(self):
        rows = await self._tx.execute("SELECT sha256 FROM blobs")
        return {r[0] for r in rows}

    async def delete_blobs(self, shas):
        for sha in shas:
            await self._tx.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))

    # -- node-local state (not synced, not revisioned) ---------------------

    async def get_local(self, key, default=None):
        rows = await self._tx.execute("SELECT value FROM node_state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    async def set_local(self, key, value):
        await self._tx.execute(
            "INSERT INTO node_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, encode(value)),
        )

    async def delete_local(self, key):
        await self._tx.execute("DELETE FROM node_state WHERE key = ?", (key,))


def _sort_key(entity):
    key = entity.key
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
