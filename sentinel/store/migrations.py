"""
Versioned schema migrations, shipped as package data:
``schema/<dialect>/NNN_name.sql``.  Each one runs in its own transaction
and is recorded in ``schema_migrations``; applied ones are skipped, so
running them at every start is idempotent.
"""

import os
import re

from twisted.logger import Logger

log = Logger()

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schema")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


def available_migrations(dialect):
    """[(version, name, [statements])] in order."""
    found = []
    directory = os.path.join(SCHEMA_DIR, dialect)
    for filename in sorted(os.listdir(directory)):
        m = _NAME.match(filename)
        if not m:
            continue
        with open(os.path.join(directory, filename), encoding="utf-8") as f:
            found.append((int(m.group(1)), m.group(2), split_statements(f.read())))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migrations for {dialect} are not numbered 001..: {versions}")
    return found


def split_statements(sql):
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def _applied(tx):
    await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    rows = await tx.execute("SELECT version FROM schema_migrations")
    return {r[0] for r in rows}


async def _apply_one(tx, version, name, statements, now_text):
    if tx.dialect == "postgres":
        # Two daemons starting on one database: the second waits here.
        await tx.execute("SELECT pg_advisory_xact_lock(5353)")
    if version in await _applied(tx):
        return False
    for statement in statements:
        await tx.execute(statement)
    await tx.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (version, name, now_text),
    )
    return True


async def migrate(db, now_text):
    """Apply every migration not yet applied. Returns the versions applied."""
    done = []
    migrations = available_migrations(db.dialect)
    applied = await db.run(_applied)
    newest = max((v for v, _, _ in migrations), default=0)
    if applied and max(applied) > newest:
        raise MigrationError(
            f"the database schema (version {max(applied)}) is newer than this "
            f"Sentinel (version {newest}); upgrade Sentinel"
        )
    for version, name, statements in migrations:
        if version in applied:
            continue
        if await db.run(_apply_one, version, name, statements, now_text, patient=True):
            log.info("applied schema migration {version:03d}_{name}", version=version, name=name)
            done.append(version)
    return done
