"""
libpq settings for every PostgreSQL connection Sentinel makes (the daemon's
store, the query-log writer child), so that none waits for the server for
ever: TCP keepalives and ``tcp_user_timeout`` find a dead peer, the server
cancels a statement after half of ``timeout`` (a lock held elsewhere) and
ends a transaction whose client went silent after twice ``timeout``
(``idle_in_transaction_session_timeout``: its row locks are released for the
next connection).  A setting the database URL gives itself is left alone.
"""

import psycopg2.extensions


def session_settings(dsn, timeout):
    """Keyword arguments for psycopg2.connect (timeout in seconds)."""
    given = psycopg2.extensions.parse_dsn(dsn)
    ms = int(timeout * 1000)
    wanted = {
        "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
        "keepalives_count": 3,
        "options": f"-c statement_timeout={ms // 2} "
                   f"-c idle_in_transaction_session_timeout={2 * ms}",
    }
    if psycopg2.__libpq_version__ >= 120000:
        wanted["tcp_user_timeout"] = ms  # data sent and never acknowledged
    return {k: v for k, v in wanted.items() if k not in given}
