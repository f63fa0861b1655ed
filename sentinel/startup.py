"""
Start-up checks and the one-line, actionable messages for operational
failures users hit (busy port, low port without privileges, unwritable
data directory).  These end the process with a non-zero status and no
traceback.
"""

import errno
import os
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
