"""
PostgreSQL for tests: a fresh, uniquely named database per test, dropped
afterwards.  The server is found through SENTINEL_TEST_PG (a libpq URL of
an admin connection, default postgresql://root@127.0.0.1:5432/postgres);
.ci/run makes sure one is running.  When none is reachable the PostgreSQL
tests fail (they are not optional) unless SENTINEL_TEST_PG=skip.
"""

import os
import uuid

import psycopg2

ADMIN_URL = os.environ.get("SENTINEL_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


def skip_reason():
    return "SENTINEL_TEST_PG=skip" if ADMIN_URL == "skip" else None


def _admin():
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    return conn


def create_database():
    """Create a fresh database; returns (url, drop) where drop() removes it."""
    name = "sentinel_test_" + uuid.uuid4().hex[:12]
    conn = _admin()
    try:
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    base, _, _ = ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"

    def drop():
        conn = _admin()
        try:
            cur = conn.cursor()
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            conn.close()

    return url, drop
