"""
Node-local records that are not configuration: the query log, the
notification feed and the replay-protection nonces of cluster requests.
They never bump the configuration revision and are never synced.

Each function takes a transaction (``tx``) as its first argument and is run
by the store with ``db.run``.
"""

import attr

QUERY_LOG_COLUMNS = (
    "ts", "client_ip", "client_name", "qname", "qtype",
    "decision", "reason", "upstream", "rcode", "duration_ms",
)


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class QueryLogFilter:
    since: float = None
    until: float = None
    client: str = None  # exact client IP, or substring of the client name
    domain: str = None  # substring of qname, case-insensitive
    decision: str = None
    before_id: int = None  # pagination: rows older than this id
    limit: int = 100


async def append_query_logs(tx, rows):
    """rows: tuples in QUERY_LOG_COLUMNS order."""
    cols = ", ".join(QUERY_LOG_COLUMNS)
    marks = ", ".join("?" for _ in QUERY_LOG_COLUMNS)
    await tx.executemany(f"INSERT INTO query_log ({cols}) VALUES ({marks})", rows)


async def query_logs(tx, flt):
    where, params = [], []
    if flt.since is not None:
        where.append("ts >= ?")
        params.append(flt.since)
    if flt.until is not None:
        where.append("ts < ?")
        params.append(flt.until)
    if flt.client:
        where.append("(client_ip = ? OR LOWER(client_name) LIKE ?)")
        params += [flt.client, "%%%s%%" % _like(flt.client.lower())]
    if flt.domain:
        where.append("qname LIKE ?")
        params.append("%%%s%%" % _like(flt.domain.lower()))
    if flt.decision:
        where.append("decision = ?")
        params.append(flt.decision)
    if flt.before_id is not None:
        where.append("id < ?")
        params.append(flt.before_id)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    cols = "id, " + ", ".join(QUERY_LOG_COLUMNS)
    rows = await tx.execute(
        f"SELECT {cols} FROM query_log {clause} ORDER BY id DESC LIMIT ?",
        params + [int(flt.limit)],
    )
    names = ("id",) + QUERY_LOG_COLUMNS
    return [dict(zip(names, r)) for r in rows]


def _like(text):
    # LIKE wildcards in user input are matched literally enough for a log
    # search: drop them rather than escape (no ESCAPE clause portability).
    return text.replace("%", "").replace("_", "")


async def prune_query_logs(tx, before_ts, max_rows):
    """Delete rows older than before_ts, then all but the newest max_rows."""
    await tx.execute("DELETE FROM query_log WHERE ts < ?", (before_ts,))
    if max_rows is not None:
        rows = await tx.execute(
            "SELECT id FROM query_log ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows,)
        )
        if rows:
            await tx.execute("DELETE FROM query_log WHERE id <= ?", (rows[0][0],))


async def count_query_logs(tx):
    rows = await tx.execute("SELECT COUNT(*) FROM query_log")
    return int(rows[0][0])


# -- notifications ---------------------------------------------------------

NOTIFICATION_COLUMNS = ("id", "ts", "level", "kind", "message", "read")


async def add_notification(tx, ts, level, kind, message):
    rows = await tx.execute(
        "INSERT INTO notifications (ts, level, kind, message, read) "
        "VALUES (?, ?, ?, ?, 0) RETURNING id",
        (ts, level, kind, message),
    )
    return int(rows[0][0])


async def list_notifications(tx, limit=50, before_id=None, unread_only=False):
    where, params = [], []
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    if unread_only:
        where.append("read = 0")
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = await tx.execute(
        f"SELECT {', '.join(NOTIFICATION_COLUMNS)} FROM notifications {clause} "
        f"ORDER BY id DESC LIMIT ?",
        params + [int(limit)],
    )
    return [
        dict(zip(NOTIFICATION_COLUMNS, r[:5] + (bool(r[5]),))) for r in rows
    ]


async def unread_notifications(tx):
    rows = await tx.execute("SELECT COUNT(*) FROM notifications WHERE read = 0")
    return int(rows[0][0])


async def mark_notifications_read(tx, ids=None):
    """Mark the given ids (or all, if ids is None) read; returns how many."""
    if ids is None:
        rows = await tx.execute("UPDATE notifications SET read = 1 WHERE read = 0 RETURNING id")
        return len(rows)
    count = 0
    for i in ids:
        count += len(
            await tx.execute(
                "UPDATE notifications SET read = 1 WHERE id = ? AND read = 0 RETURNING id",
                (int(i),),
            )
        )
    return count


async def prune_notifications(tx, before_ts):
    await tx.execute("DELETE FROM notifications WHERE ts < ?", (before_ts,))


# -- replay protection -----------------------------------------------------


async def remember_nonce(tx, nonce, expires):
    """True if the nonce is new (and is now remembered), False if seen."""
    rows = await tx.execute(
        "INSERT INTO nonces (nonce, expires) VALUES (?, ?) "
        "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
        (nonce, expires),
    )
    return bool(rows)


async def prune_nonces(tx, now):
    await tx.execute("DELETE FROM nonces WHERE expires < ?", (now,))
