"""
Statistics from the query log: totals by decision, time series and top
lists for a time window.  Each function takes a read transaction (run with
``store.db.run(fn, ..., write=False)``, like L{sentinel.store.records}) and
uses SQL both backends understand.
"""

BLOCKED = "blocked"
TOP_KINDS = {
    "domains": ("qname", None),
    "blocked": ("qname", (BLOCKED,)),
    "clients": ("client_ip", None),
}


def _window(since, until):
    return "ts >= ? AND ts < ?", [since, until]


async def totals(tx, since, until):
    """{decision: count} for the window."""
    where, params = _window(since, until)
    rows = await tx.execute(
        f"SELECT decision, COUNT(*) FROM query_log WHERE {where} GROUP BY decision", params)
    return {r[0]: int(r[1]) for r in rows}


async def averages(tx, since, until):
    """(distinct clients, average duration in ms) for the window."""
    where, params = _window(since, until)
    rows = await tx.execute(
        f"SELECT COUNT(DISTINCT client_ip), AVG(duration_ms) FROM query_log WHERE {where}",
        params)
    clients, avg = rows[0] if rows else (0, None)
    return int(clients or 0), (float(avg) if avg is not None else None)


async def timeseries(tx, since, until, bucket):
    """[(bucket start, decision, count)] ordered by time."""
    where, params = _window(since, until)
    if tx.dialect == "postgres":
        slot = "FLOOR((ts - ?) / ?)"
    else:
        slot = "CAST((ts - ?) / ? AS INTEGER)"  # ts >= since, so truncation is floor
    rows = await tx.execute(
        f"SELECT {slot} AS slot, decision, COUNT(*) FROM query_log WHERE {where} "
        f"GROUP BY slot, decision ORDER BY slot",
        [since, bucket] + params)
    return [(since + int(r[0]) * bucket, r[1], int(r[2])) for r in rows]


async def top(tx, kind, since, until, limit):
    """[(name, count, client name)] most frequent first."""
    column, decisions = TOP_KINDS[kind]
    where, params = _window(since, until)
    if decisions:
        where += " AND decision IN (%s)" % ", ".join("?" for _ in decisions)
        params += list(decisions)
    extra = ", MAX(client_name)" if column == "client_ip" else ", ''"
    rows = await tx.execute(
        f"SELECT {column}, COUNT(*) AS n{extra} FROM query_log WHERE {where} "
        f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT ?",
        params + [int(limit)])
    return [(r[0], int(r[1]), r[2] or "") for r in rows]
