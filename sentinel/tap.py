"""
twistd plugin entry point: options -> Config -> makeService.  Wiring only:
every component gets its dependencies here, explicitly.

Each subsystem has one ``_wire_*`` function that takes the shared
L{Wiring} and adds its services, API areas and the objects other
subsystems need.  Order matters only where one uses what another made.
"""

import os
from types import SimpleNamespace

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from sentinel.api.auth import AuthApi
from sentinel.api.backup_checks import default_validators
from sentinel.api.ha import HaApi, treq_fetch
from sentinel.api.health import HealthApi
from sentinel.api.maintenance import MaintenanceApi
from sentinel.api.notifications import NotificationsApi
from sentinel.api.openapi import OpenApiApi
from sentinel.api.secrets import SecretsApi
from sentinel.api.settings import SettingsApi
from sentinel.api.hosts import HostPolicy
from sentinel.api.site import Gate, Site
from sentinel.api.system import SystemApi
from sentinel.auth import (
    AdminAuthenticator, ApiTokens, LoginLimits, PasswordHasher, Sessions, Users,
)
from sentinel.crypto import KeyFileError, SecretBox, load_or_create_key
from sentinel.dns.decision import NullQueryLog, PolicySource
from sentinel.ha.state import HaPublisher, HaState, sealed_password
from sentinel.keycheck import KeyCheck, KeyCheckService
from sentinel.options import SentinelOptions as Options  # noqa: F401 (twistd)
from sentinel.secrets import Secrets, sealed_values as sealed_secrets
from sentinel.services import ListeningService, StoreService
from sentinel.startup import StartupError, fatal, prepare_data_dir
from sentinel.store import Store, StoreUnavailable


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        return build(options.config, reactor)
    except (StartupError, KeyFileError) as e:
        fatal(str(e))


log = Logger()


def _quietly(fn, what):
    """Run a periodic job; log a failure instead of stopping the timer."""

    def failed(failure):
        if failure.check(StoreUnavailable):
            return None  # not started yet, or reconnecting: next time
        log.failure(what, failure)

    return maybeDeferred(fn).addErrback(failed)


class Wiring(SimpleNamespace):
    """What the subsystems share while the daemon is being put together."""


def build(config, reactor):
    return wire(config, reactor).top


def wire(config, reactor):
    """The whole daemon, put together (w.top is the root service)."""
    w = Wiring(
        config=config,
        reactor=reactor,
        top=MultiService(),
        areas=[],  # API areas (objects with @endpoint methods)
        authenticators={},  # Gate: auth name -> authenticator
        guard=None,  # Gate: read-only guard (cluster)
        health_checks={},  # name -> callable() -> bool, for /api/health
        health_problems={},  # name -> callable() -> one-line message or None, ditto
        # name -> callable() -> JSON-able dict (or Deferred), for /api/system/status
        status_providers={},
        # entity kind -> callable(key, data) raising ValueError if invalid
        # (backup import; cluster sync may use them too)
        entity_validators={},
        # entity kind -> backup import hook (prepare/settle, see
        # sentinel/api/maintenance.py): what a restore does beyond the entities
        restore_hooks={},
        # callables(state) -> problems between entities, with .kinds (backup import)
        restore_checks=[],
        secret_catalog={},  # secret name -> what it is for (/api/secrets/status)
        # async callable(ctx) -> [(label, sealed, aad)]: what is sealed under
        # the node key, for the key check (sentinel/keycheck.py)
        sealed_sources=[],
        web=None,  # resource serving the web UI
        policy_source=PolicySource(),  # DNS reads .current; filtering swaps it
        querylog=NullQueryLog(),  # replaced by the query-log buffer
        # Services that must run only while this node is leader or
        # standalone (blocklist downloads, serving sync), resp. only while
        # it is a follower (the sync client).  The cluster subsystem starts
        # and stops them as the effective role changes.
        leader_only=MultiService(),
        follower_only=MultiService(),
    )
    _wire_storage(w)
    _wire_auth(w)
    _wire_querylog(w)
    _wire_dns(w)
    _wire_filtering(w)
    _wire_cluster(w)
    _wire_ha(w)
    _wire_web(w)
    _wire_http(w)
    return w


def _wire_storage(w):
    prepare_data_dir(w.config.data_dir)
    key_file = w.config.key_file
    existed = os.path.lexists(key_file)
    w.box = SecretBox(load_or_create_key(key_file))
    if not existed:
        log.info("created a new node key {path} (keep it with the database: secrets are "
                 "sealed with it)", path=key_file)
    w.store = Store.from_url(w.config.database, w.reactor)
    w.secrets = Secrets(w.store, w.box)
    w.store_service = StoreService(w.store, url=w.config.database)
    w.health_problems["store"] = w.store_service.current_problem
    w.store_service.setName("store")
    w.store_service.setServiceParent(w.top)
    w.sealed_sources.append(sealed_secrets)
    check = KeyCheck(w.store, w.box, key_file, w.sealed_sources)
    KeyCheckService(check, w.store_service.when_ready, w.reactor).setServiceParent(w.top)
    w.health_problems["nodeKey"] = lambda: check.problem


def _wire_auth(w):
    """Admin accounts, sessions, API tokens: sets w.authenticators["admin"]."""
    reactor = w.reactor
    hasher = PasswordHasher(
        run=lambda fn, *args: deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args))
    w.users = Users(w.store, hasher, reactor)
    w.sessions = Sessions(w.store, reactor)
    w.api_tokens = ApiTokens(w.store, reactor)
    w.authenticators["admin"] = AdminAuthenticator(w.sessions, w.api_tokens)
    # Who may create the admin account: whoever may use this node's DNS
    # (loopback, private, link-local, on-link and configured networks); the
    # DNS service is wired after this, so it is looked up per request.
    w.areas.append(AuthApi(w.users, w.sessions, w.api_tokens, LoginLimits(reactor),
                           w.authenticators["admin"],
                           setup_from=lambda ip: w.dns.engine.access.allowed_ip(ip)))
    pruner = TimerService(3600, _quietly, w.sessions.prune, "pruning expired sessions")
    pruner.clock = reactor
    pruner.setName("session-pruner")
    pruner.setServiceParent(w.leader_only)


def _wire_querylog(w):
    """Replaces w.querylog with the buffered query-log writer."""
    from sentinel.filtering.querylog import QueryLog, QueryLogService
    from sentinel.store.logpipe import QueryLogWriter

    w.querylog = QueryLog()
    w.querylog_service = QueryLogService(w.querylog, w.store, w.reactor,
                                         ready=w.store_service.when_ready,
                                         writer=QueryLogWriter(w.reactor, w.config.database,
                                                               spool=w.config.querylog_spool))
    w.querylog_service.setName("querylog")
    w.querylog_service.setServiceParent(w.top)
    w.health_problems["queryLog"] = w.querylog_service.problem


def _wire_dns(w):
    """DNS listeners, cache, upstreams: sets w.dns_stats, w.dns_probe."""
    from sentinel.api.dns_settings import DnsSettingsApi
    from sentinel.dns.service import DnsService

    dns = DnsService(w.reactor, w.config, w.policy_source, w.querylog, store=w.store,
                     store_ready=w.store_service.when_ready)
    dns.setName("dns")
    dns.setServiceParent(w.top)
    w.dns = dns
    w.dns_stats = dns.stats  # .snapshot() -> dict, see sentinel/dns/stats.py
    w.dns_probe = dns.probe  # .healthy()
    w.health_checks["dns"] = dns.probe.healthy
    w.areas.append(DnsSettingsApi(w.store, dns.runtime, dns.probe))


def _wire_filtering(w):
    """Policy snapshots into w.policy_source, blocklists, rules, clients, metrics."""
    from sentinel.api.blocklists import BlocklistsApi
    from sentinel.api.clients import ClientsApi
    from sentinel.api.filtering import FilteringApi
    from sentinel.api.protection import ProtectionApi
    from sentinel.api.querylog import QueryLogApi
    from sentinel.api.rewrites import RewritesApi
    from sentinel.api.rules import RulesApi
    from sentinel.api.stats import StatsApi
    from sentinel.filtering.engine import PolicyEngine
    from sentinel.filtering.fetch import http_client
    from sentinel.filtering.parsing import in_child
    from sentinel.filtering.pauseclock import PauseClock
    from sentinel.filtering import model
    from sentinel.filtering.consistency import FilteringConsistency
    from sentinel.filtering.refresher import BlocklistRefresher
    from sentinel.filtering.restore import BlocklistRestore

    ready = w.store_service.when_ready
    w.policy_engine = PolicyEngine(w.store, w.reactor, w.policy_source, ready=ready,
                                   lastgood_file=w.config.lastgood_file,
                                   store_failed=w.store_service.when_failed)
    w.store_service.meanwhile = w.policy_engine.meanwhile
    w.health_problems["policy"] = w.policy_engine.problem
    w.policy_engine.setName("filtering")
    w.policy_engine.setServiceParent(w.top)
    w.status_providers["filtering"] = lambda: dict(
        w.policy_engine.status(), querylog_buffered=w.querylog.waiting(),
        querylog_dropped=w.querylog.dropped)
    # Downloads run on the leader (or standalone) only; followers get the
    # stored contents by sync.
    w.blocklist_refresher = BlocklistRefresher(w.store, w.reactor, http_client(w.reactor),
                                               ready=ready, parse=in_child(w.reactor))
    w.blocklist_refresher.setName("blocklists")
    w.blocklist_refresher.setServiceParent(w.leader_only)
    # A pause set here keeps its length when this node's clock steps
    # (leader or standalone: it writes the synced setting).
    pauses = PauseClock(w.store, w.reactor, ready=ready)
    pauses.setServiceParent(w.leader_only)
    w.dns.clock_steps.listeners += [w.policy_engine.clock_stepped, pauses.clock_stepped]
    pauses.check_clock = w.dns.clock_steps.check
    w.restore_hooks[model.BLOCKLIST] = BlocklistRestore()
    w.restore_checks.append(FilteringConsistency())
    w.areas += [
        ClientsApi(w.store), RulesApi(w.store), RewritesApi(w.store),
        BlocklistsApi(w.store, lambda: w.blocklist_refresher),
        ProtectionApi(w.store, w.reactor, pauses), FilteringApi(w.store, w.policy_engine),
        QueryLogApi(w.store, w.querylog_service),
        StatsApi(w.store, w.reactor, w.querylog_service, w.policy_engine,
                 getattr(w, "dns_stats", None)),
    ]


def _wire_cluster(w):
    """Roles, sync, read-only guard (w.guard), readiness (see docs/CLUSTER.md)."""
    from sentinel.cluster import wiring

    wiring.wire(w)


def _wire_ha(w):
    """HA (VIP/keepalived) configuration API and files for the sidecar."""
    w.ha_state = HaState(w.store, w.box, w.config, w.reactor)
    # The sidecar writes the role file elsewhere than this daemon reads it.
    w.health_problems["haRoleFile"] = w.ha_state.role_file_mismatch
    w.sealed_sources.append(sealed_password)
    w.areas.append(HaApi(w.ha_state, w.reactor, treq_fetch(w.reactor),
                         known_peers=lambda: _cluster_followers(w)))
    publisher = HaPublisher(w.ha_state, w.store_service.when_ready)
    publisher.setName("ha")
    publisher.setServiceParent(w.top)


def _cluster_followers(w):
    """Addresses the followers of this (leader) node poll from: VIP hand-over targets."""
    server = getattr(w, "sync_server", None)
    return [f.get("address") for f in getattr(server, "followers", {}).values()]


def _wire_web(w):
    """The web UI resource (w.web): static assets and SPA routes."""
    from sentinel.web import WebUI

    w.web = WebUI()


def _own_names():
    # gethostname() only: getfqdn() asks DNS, which may be this very daemon,
    # still starting.
    import socket

    return [socket.gethostname()]


def _wire_http(w):
    w.areas.insert(0, HealthApi(w.store, w.health_checks, w.health_problems))
    for kind, validate in default_validators().items():
        w.entity_validators.setdefault(kind, validate)
    if getattr(w, "dns_stats", None) is not None:
        w.status_providers.setdefault("dns", w.dns_stats.snapshot)
    if getattr(w, "readiness", None) is not None:
        w.status_providers.setdefault("cluster", w.readiness.answer)
    w.areas += [
        SettingsApi(w.store),
        SecretsApi(w.secrets, w.secret_catalog),
        NotificationsApi(w.store),
        MaintenanceApi(w.store, w.secrets, w.entity_validators, w.reactor, w.restore_hooks,
                       w.restore_checks),
        SystemApi(w.store, w.status_providers, w.reactor),
    ]
    w.areas.append(OpenApiApi(lambda: site.endpoints, w.authenticators))
    gate = Gate(authenticators=w.authenticators, guard=w.guard)
    w.site = site = Site(w.areas, gate, fallback=w.web,
                         hosts=HostPolicy(w.config.http_hosts, _own_names()))
    config, reactor = w.config, w.reactor
    factory = site.site()
    # Stopping closes the port, then every open connection: the keepalived
    # sidecar watches one, so a node being stopped (docker compose stop,
    # systemctl stop) leaves the VRRP election at once instead of when the
    # process exits (its DNS port closes when shutdown starts).
    http = ListeningService(
        "HTTP", config.http_port, "tcp",
        lambda: reactor.listenTCP(
            config.http_port, factory, interface=config.http_interface or "::"
        ),
        close_connections=factory.close_connections,
    )
    http.setName("http")
    http.setServiceParent(w.top)
