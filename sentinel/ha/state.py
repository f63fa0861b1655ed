"""
The daemon's side of HA: the node-local settings (store ``node_state``,
never synced: every node has its own interface, priority and addresses),
the VRRP password sealed with the node key, and the config.json the
sidecar reads -- rewritten on every change and at every start, so it
always matches the database and where this daemon listens.
"""

import os

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from sentinel.crypto import DecryptError
from sentinel.ha import files, release
from sentinel.ha.model import HaSettings, check_password, parse_settings

log = Logger()
LOCAL_KEY = "ha.settings"
KEEP = object()  # "leave the stored password as it is"


class PublishError(Exception):
    """config.json could not be written (the settings are stored)."""


async def sealed_password(ctx):
    """For L{sentinel.keycheck}: the VRRP password, sealed under the node key."""
    stored = await ctx.get_local(LOCAL_KEY)
    if isinstance(stored, dict) and stored.get("password"):
        return [("the VRRP password", stored["password"], files.PASSWORD_AAD)]
    return []


class HaState:
    def __init__(self, store, box, config, clock):
        self._store = store
        self._box = box
        self.config = config
        self._clock = clock
        self._file_errors = {}  # path -> the last error logged for it

    async def load(self):
        """(HaSettings, sealed password or None)."""
        stored = await self._store.get_local(LOCAL_KEY)
        if not isinstance(stored, dict):
            return HaSettings(), None
        sealed = stored.get("password")
        try:
            settings, _ = parse_settings(stored.get("settings") or {},
                                         password_known=bool(sealed))
        except ValueError as e:
            log.error("stored HA settings are invalid ({error}); treating HA as disabled",
                      error=e)
            return HaSettings(), None
        return settings, sealed if isinstance(sealed, str) else None

    def password_works(self, sealed):
        try:
            self._box.decrypt_text(sealed, files.PASSWORD_AAD)
            return True
        except (DecryptError, TypeError, ValueError):
            return False

    async def save(self, data, netinfo=None):
        """
        Validate an API body, store it, publish config.json.  ``password``
        absent: keep the stored one; a string: replace it; null: clear it.
        Returns (settings, password_set, warnings); raises HaError.
        """
        _, sealed = await self.load()
        password = data.get("password", KEEP)
        if password is not KEEP and password is not None:
            check_password(password)
            sealed = self._box.encrypt_text(password, files.PASSWORD_AAD)
        elif password is None:
            sealed = None
        fields = {k: v for k, v in data.items() if k != "password"}
        settings, warnings = parse_settings(fields, password_known=bool(sealed),
                                            netinfo=netinfo)
        await self._store.set_local(LOCAL_KEY, {"settings": settings.to_json(),
                                                "password": sealed})
        self.write_file(settings, sealed)
        return settings, bool(sealed), warnings

    def write_file(self, settings, sealed):
        """Write config.json; PublishError (one line) if the file cannot be written."""
        daemon = files.daemon_endpoint(self.config.http_interface, self.config.http_port,
                                       self.config.role_file or None)
        doc = files.config_document(settings.to_json(), sealed, daemon)
        doc["writtenAt"] = self._clock.seconds()
        path = self.config.ha_config_file
        try:
            files.write_json(path, doc, 0o600)
        except OSError as e:
            what = "is a directory" if os.path.isdir(path) else f"cannot be written ({e.strerror})"
            raise PublishError(
                f"{path} {what}, so the keepalived sidecar cannot see the HA settings; the "
                f"settings are saved and are written there again at every start (or "
                f"save them again once the file can be written)") from None

    async def publish(self):
        """Rewrite config.json from the store (at start-up)."""
        settings, sealed = await self.load()
        if settings == HaSettings() and sealed is None and not os.path.exists(self.config.ha_config_file):
            return  # HA never configured: no file needed
        try:
            self.write_file(settings, sealed)
        except PublishError as e:
            log.error("{error}", error=str(e))
            return
        log.info("HA settings published to {path} (enabled={enabled})",
                 path=self.config.ha_config_file, enabled=settings.enabled)

    # -- what the sidecar reports ---------------------------------------------------

    def _read(self, path):
        """The sidecar's file, or None; a bad file is logged once per distinct error
        (the UI polls these), and answers go on as if it were absent."""
        try:
            value = files.read_json(path)
        except files.FileFormatError as e:
            if self._file_errors.get(path) != str(e):
                log.warn("{error}; ignoring it until the sidecar rewrites it", error=str(e))
            self._file_errors[path] = str(e)
            return None
        self._file_errors.pop(path, None)
        return value

    def netinfo(self):
        return self._read(self.config.netinfo_file)

    def sidecar_status(self):
        return self._read(_sibling(self.config.netinfo_file, "status.json"))

    def peers(self):
        return self._read(_sibling(self.config.netinfo_file, "peers.json"))

    def role_file(self):
        return files.read_role(self.config.role_file)

    def role_file_mismatch(self):
        """The sidecar's word that it writes the role file somewhere else
        than this daemon reads it (HA enabled), or None: for /api/health."""
        status = self.sidecar_status()
        if not isinstance(status, dict) or status.get("haEnabled") is not True:
            return None
        problem = status.get("roleFileMismatch")
        return problem if isinstance(problem, str) and problem else None

    # -- asking the sidecar to hand the VIP over ------------------------------------

    @property
    def release_file(self):
        return _sibling(self.config.netinfo_file, "release.json")

    def request_release(self, rid, delay):
        release.write_request(self.release_file, rid, self._clock.seconds(), delay)

    def cancel_release(self):
        files.remove_file(self.release_file)


def _sibling(path, name):
    return os.path.join(os.path.dirname(path), name)


class HaPublisher(Service):
    """Rewrites config.json once the store is open (every daemon start)."""

    def __init__(self, state, store_ready):
        self._state = state
        self._store_ready = store_ready  # callable() -> Deferred: the store is open
        self.published = None  # Deferred, for tests

    def startService(self):
        super().startService()
        opened = self._store_ready()
        opened.addCallback(lambda _: defer.ensureDeferred(self._state.publish()))
        opened.addErrback(lambda f: log.failure("publishing the HA settings failed", f))
        self.published = opened
