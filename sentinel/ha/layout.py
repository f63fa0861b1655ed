"""
What the sidecar reads and where: its file layout (L{SidecarPaths}), and
config.json -> validated settings + unsealed password (L{load_config}),
-> the paths keepalived.conf refers to (L{render_paths}).  Every value in
config.json is validated again here: it is a file on disk, i.e. input.
"""

import ipaddress
import json
import os

import attr

from sentinel.crypto import DecryptError, KeyFileError, SecretBox, read_key
from sentinel.ha import files
from sentinel.ha.model import HaError, parse_settings
from sentinel.ha.render import RenderPaths


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class SidecarPaths:
    data_dir: str
    role_file: str
    runtime_dir: str

    @property
    def ha_dir(self):
        return os.path.join(self.data_dir, "sentinel", "ha")

    config_file = property(lambda self: os.path.join(self.ha_dir, "config.json"))
    netinfo_file = property(lambda self: os.path.join(self.ha_dir, "netinfo.json"))
    status_file = property(lambda self: os.path.join(self.ha_dir, "status.json"))
    peers_file = property(lambda self: os.path.join(self.ha_dir, "peers.json"))
    key_file = property(lambda self: os.path.join(self.data_dir, "node.key"))
    conf = property(lambda self: os.path.join(self.runtime_dir, "keepalived.conf"))
    fifo = property(lambda self: os.path.join(self.runtime_dir, "notify.fifo"))
    alive_file = property(lambda self: os.path.join(self.runtime_dir, "alive"))
    release_file = property(lambda self: os.path.join(self.runtime_dir, "release"))
    release_request = property(lambda self: os.path.join(self.ha_dir, "release.json"))


class ConfigProblem(Exception):
    pass


def load_config(raw, paths):
    """config.json bytes -> (settings, password, daemon) for an enabled config, or None."""
    if not raw:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("expected a JSON object")
    except (UnicodeDecodeError, ValueError) as e:
        raise ConfigProblem(f"{paths.config_file} is not valid JSON ({e})") from None
    try:
        fields, sealed, daemon = files.split_config_document(doc)
        ipaddress.ip_address(daemon["host"])
    except (files.FileFormatError, ValueError) as e:
        raise ConfigProblem(f"{paths.config_file}: {e}") from None
    try:
        settings, _ = parse_settings(fields, password_known=sealed is not None)
    except HaError as e:
        raise ConfigProblem(f"{paths.config_file}: {e.field}: {e.message}") from None
    if not settings.enabled:
        return None
    return settings, unseal(sealed, paths.key_file), daemon


def unseal(sealed, key):
    if not os.path.exists(key):
        raise ConfigProblem(f"{key} does not exist: the sidecar must use the same data "
                            f"directory as the daemon")
    try:
        box = SecretBox(read_key(key))
        return box.decrypt_text(sealed, files.PASSWORD_AAD)
    except (KeyFileError, DecryptError) as e:
        raise ConfigProblem(f"cannot unseal the VRRP password with {key} ({e}); is this "
                            f"the daemon's data directory?") from None


def render_paths(paths, check_command, settings, daemon):
    """What keepalived.conf refers to: FIFO, track files, check command."""
    window = 3 * settings.advert_interval + 2
    check = tuple(check_command) + ("--url", daemon["readyUrl"], "--peers", paths.peers_file,
                                    "--window", str(window))
    return RenderPaths(notify_fifo=paths.fifo, alive_file=paths.alive_file,
                       release_file=paths.release_file, check_command=check)
