"""
The daemon's startup configuration: a frozen value built once from the
command line and the environment (see L{sentinel.options}) and passed
explicitly to everything that needs it.

Runtime configuration that users change through the API (DNS settings,
filtering, cluster membership) lives in the store, not here.
"""

import os

import attr


class ConfigError(Exception):
    """
    A user mistake in the startup configuration.  The message is one line
    that names the option and says what is wrong; it is shown without a
    traceback.
    """


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Config:
    data_dir: str
    dns_port: int = 53
    # Addresses to serve DNS on; empty means every address, IPv4 and IPv6.
    dns_interfaces: tuple = ()
    http_port: int = 8080
    # Address for the admin API and web UI; "" means every address.
    http_interface: str = ""
    # Extra names the admin API answers to (see sentinel.api.hosts).
    http_hosts: tuple = ()
    database: str = ""
    # Upstream specs as given by the user (see sentinel.dns.upstreamspec).
    upstreams: tuple = ()
    role_file: str = ""
    # Readiness: a follower is ready only if it synced within this many seconds.
    sync_freshness: float = 20.0
    debug: bool = False

    @property
    def key_file(self) -> str:
        """The per-node secret key (AES-GCM), created 0600 on first start."""
        return os.path.join(self.data_dir, "node.key")

    @property
    def state_dir(self) -> str:
        """Directory for files shared with the keepalived sidecar."""
        return os.path.join(self.data_dir, "sentinel")

    @property
    def ha_config_file(self) -> str:
        return os.path.join(self.state_dir, "ha", "config.json")

    @property
    def netinfo_file(self) -> str:
        return os.path.join(self.state_dir, "ha", "netinfo.json")

    @property
    def querylog_spool(self) -> str:
        """Query-log rows waiting for the database (sentinel.store.logpipe); 0600."""
        return os.path.join(self.data_dir, "querylog.spool")

    @property
    def lastgood_file(self) -> str:
        """The last-known-good policy (sentinel.filtering.lastgood); 0600."""
        return os.path.join(self.data_dir, "policy.lkg")

    @property
    def uses_sqlite(self) -> bool:
        return self.database.startswith("sqlite:")
