"""
Start-up checks and the one-line, actionable messages for operational
failures users hit (busy port, low port without privileges, unwritable
data directory).  These end the process with a non-zero status and no
traceback.
"""

import errno
import os
import re
import sys

RESOLVED_HINT = (
    "if it is systemd-resolved's stub listener, set DNSStubListener=no in "
    "/etc/systemd/resolved.conf and run 'systemctl restart systemd-resolved' "
    "(see docs/CLUSTER_HA.md, 'Port 53 already in use')"
)


class StartupError(Exception):
    """A fatal, explained start-up failure."""


def fatal(message, status=1):
    """Print one line to the real stderr and exit (also from inside twistd)."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"sentinel: error: {message}\n")
    stream.flush()
    raise SystemExit(status)


def prepare_data_dir(path):
    """Create the data directory (0700) and check we can write to it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(path, "sentinel"), mode=0o755, exist_ok=True)
        probe = os.path.join(path, f".write-test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as e:
        raise StartupError(
            f"data directory {path} is not writable ({e.strerror}); "
            f"fix its owner/permissions or choose another with --data-dir"
        ) from None


def explain_listen_error(what, port, proto, error):
    """A one-line explanation for a failed bind()."""
    code = getattr(getattr(error, "socketError", None), "errno", None)
    if code is None:
        text = str(error)
        code = errno.EADDRINUSE if "in use" in text else (
            errno.EACCES if "ermission" in text else None)
    where = f"{what} port {port}/{proto}"
    if code == errno.EADDRINUSE:
        hint = RESOLVED_HINT if what == "DNS" and port == 53 else (
            "stop the other program or choose another port")
        return f"{where} is already in use by another program; {hint}"
    if code == errno.EACCES:
        return (
            f"permission denied binding {where}: ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE (e.g. systemd AmbientCapabilities="
            f"CAP_NET_BIND_SERVICE), or use a high port for testing"
        )
    if code == errno.EADDRNOTAVAIL:
        return f"cannot bind {where}: the address is not configured on this host"
    return f"cannot listen on {where}: {error}"


def database_name(url):
    """The database for messages: the SQLite path, or the URL without a password."""
    if url.startswith("sqlite:///"):
        return "/" + url[len("sqlite://"):].lstrip("/")  # the path open_database uses
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def explain_store_error(url, error):
    """
    One line for a store that cannot be opened.  The daemon keeps running
    without it (DNS answers, unfiltered; the API answers 503) and retries,
    so restoring or fixing the file is picked up without a restart.  The
    file itself is never changed by a failed attempt.
    """
    where = database_name(url)
    text = str(error) or type(error).__name__
    kept = "it was left as it is"
    if "newer than this Sentinel" in text:
        return (f"{where}: {text}: it was written by a newer Sentinel; run that version, or "
                f"restore a backup made with this one ({kept})")
    if "file is not a database" in text:
        return (f"{where} is not a SQLite database ({kept}): restore sentinel.db from a "
                f"backup, or move it away to start with an empty one")
    if "malformed" in text or "corrupt" in text:
        return (f"{where} is damaged ({text}; {kept}): restore it from a backup (or try "
                f"'sqlite3 {where} .recover'), or move it away to start with an empty one")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return (f"{where} cannot be opened for writing ({text}): it and its directory must "
                f"be writable by the user Sentinel runs as (uid {os.geteuid()}), and it "
                f"must be a file")
    return f"could not open the store {where} ({text})"
