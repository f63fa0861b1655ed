"""
The files the daemon and the keepalived sidecar share (both see the same
data directory: one host, or one volume mounted into both containers):

- ``<data-dir>/sentinel/ha/config.json`` (0600): written by the daemon from
  its node-local HA settings; the VRRP password inside is sealed with the
  node key, so the file is safe to paste into a bug report;
- ``<data-dir>/sentinel/ha/netinfo.json``: interfaces and default route,
  written by the sidecar;
- ``<data-dir>/sentinel/ha/status.json``: what the sidecar is doing;
- the role file (``leader`` / ``follower``), written by the sidecar on
  every VRRP state change.

Every write is atomic (temporary file, fsync, rename): readers see the old
or the new content, never a torn one.
"""

import json
import os

from sentinel.safefile import UnreadableFile, atomic_write, read_limited

CONFIG_VERSION = 1
PASSWORD_AAD = "ha:vrrp_password"
MAX_FILE = 1024 * 1024
ROLES = ("leader", "follower")


class FileFormatError(ValueError):
    """A shared file exists but cannot be used (message says why)."""


def write_json(path, value, mode=0o600):
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n", mode)


def read_bytes(path, limit=MAX_FILE):
    """The content of the regular file at path, None if it does not exist.
    Never blocks (L{sentinel.safefile}): the daemon and the sidecar read
    these on their reactor.  FileFormatError if it cannot be read or is
    larger than ``limit`` bytes."""
    try:
        return read_limited(path, limit)
    except UnreadableFile as e:
        raise FileFormatError(f"{path}: {e}") from None


def read_json(path):
    """The JSON object in path, None if the file does not exist; never
    blocks (L{read_bytes})."""
    raw = read_bytes(path)
    if raw is None:
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FileFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise FileFormatError(f"{path}: expected a JSON object")
    return value


def write_role(path, role):
    if role not in ROLES:
        raise ValueError(f"not a role: {role!r}")
    atomic_write(path, role + "\n", 0o644)


def read_role(path):
    """'leader', 'follower' or None; the daemon's rules (never blocks on a FIFO)."""
    from sentinel.cluster.rolefile import read_role_file

    return read_role_file(path).role


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def config_document(settings_json, sealed_password, daemon):
    """The content of config.json (see module docstring)."""
    doc = dict(settings_json)
    doc["version"] = CONFIG_VERSION
    doc["password"] = {"sealed": sealed_password} if sealed_password else None
    doc["daemon"] = daemon
    return doc


def daemon_endpoint(http_interface, http_port, role_file=None):
    """Where the sidecar reaches this daemon's API (liveness + readiness),
    and where the daemon reads its role (L{role_file_place})."""
    host = http_interface if http_interface not in ("", "::", "0.0.0.0") else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    out = {
        "host": host,
        "port": http_port,
        "readyUrl": f"http://{shown}:{http_port}/api/cluster/ready",
    }
    if role_file is not None:
        out["roleFile"] = role_file_place(role_file)
    return out


def _dir_identity(path):
    try:
        info = os.stat(os.path.dirname(path) or ".")
    except OSError:
        return None
    return [info.st_dev, info.st_ino]


def role_file_place(path):
    """Where a process reads or writes the role file: its path, and the
    identity (device, inode) of its directory -- the daemon and the sidecar
    may see the shared volume under different mount points."""
    return {"path": path, "dir": _dir_identity(path)}


def role_file_mismatch(daemon_place, own_path):
    """
    The sidecar writes the role file at ``own_path``; the daemon said (in
    config.json) where it reads it.  A message if they are not the same
    file, else None (also when the daemon did not say: an older daemon).
    """
    if not isinstance(daemon_place, dict) or not isinstance(daemon_place.get("path"), str):
        return None
    theirs = daemon_place["path"]
    if theirs == own_path:
        return None
    ident = daemon_place.get("dir")
    if (isinstance(ident, list) and ident == _dir_identity(own_path)
            and os.path.basename(theirs) == os.path.basename(own_path)):
        return None  # the same file, seen through another mount point
    return (f"the daemon reads its role from {theirs} but this sidecar writes it to "
            f"{own_path}: VIP changes never reach the daemon (it keeps its configured "
            f"role whoever holds the VIP); set CLUSTER_ROLE_FILE (--role-file) to the same "
            f"file for both, on the same data volume")


def split_config_document(doc):
    """config.json -> (settings fields, sealed password or None, daemon dict)."""
    if doc.get("version") != CONFIG_VERSION:
        raise FileFormatError(f"unsupported config.json version {doc.get('version')!r}")
    fields = {k: v for k, v in doc.items() if k not in ("version", "password", "daemon",
                                                         "writtenAt")}
    password = doc.get("password")
    sealed = password.get("sealed") if isinstance(password, dict) else None
    if sealed is not None and not isinstance(sealed, str):
        raise FileFormatError("config.json: password.sealed must be a string")
    daemon = doc.get("daemon")
    if not isinstance(daemon, dict):
        raise FileFormatError("config.json: missing the daemon section")
    host, port = daemon.get("host"), daemon.get("port")
    url = daemon.get("readyUrl")
    if (not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int)
            or not 1 <= port <= 65535 or not isinstance(url, str)):
        raise FileFormatError("config.json: daemon section is invalid")
    return fields, sealed, daemon
