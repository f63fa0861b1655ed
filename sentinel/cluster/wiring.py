"""
How the cluster subsystem plugs into the daemon (called from
L{sentinel.tap._wire_cluster}; kept here so tap.py stays one line).

Provides: w.cluster_state, w.role_machine, w.sync_server, w.sync_client,
w.readiness, w.guard, w.authenticators["cluster"]; adds the sync server
to w.leader_only, the sync client to w.follower_only, and one "cluster"
service to w.top that runs the role machine.
"""

import json
import socket

from treq.client import HTTPClient
from twisted.web.client import Agent

from sentinel.api.cluster import ClusterApi
from sentinel.api.cluster_sync import ClusterSyncApi
from sentinel.cluster.client import SyncClient
from sentinel.cluster.guard import Readiness, ReadOnlyGuard
from sentinel.cluster.plan import Applier
from sentinel.cluster.rolefile import RoleFileWatcher
from sentinel.cluster.roles import FOLLOWER_GROUP, LEADER_GROUP, RoleMachine, is_failover
from sentinel.cluster.server import SyncServer, SyncServerService
from sentinel.cluster.service import ClusterService, ServiceGroups
from sentinel.cluster.status import node_message
from sentinel.cluster.state import K_MEMBERSHIP, SECRET_AAD, ClusterState
from sentinel.quiet import QuietHTTPConnectionPool


def wire(w):
    reactor, config = w.reactor, w.config
    state = w.cluster_state = ClusterState(w.store, w.box, reactor)

    server = w.sync_server = SyncServer(w.store, state, w.secrets, reactor)
    w.authenticators["cluster"] = server
    w.authenticators["cluster-join"] = server.join_auth
    SyncServerService(server, w.store, reactor).setServiceParent(w.leader_only)

    pool = QuietHTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=5))
    client = w.sync_client = SyncClient(state, w.store, Applier(w.secrets), http, reactor,
                                        wait=poll_wait(config.sync_freshness),
                                        drop_connections=pool.closeCachedConnections)
    client.setName("sync-client")
    client.setServiceParent(w.follower_only)

    groups = ServiceGroups({LEADER_GROUP: w.leader_only, FOLLOWER_GROUP: w.follower_only})
    machine = w.role_machine = RoleMachine(groups.apply)
    cluster = ClusterService(state, machine, groups,
                             w.store_service.when_ready, reactor)
    cluster.setName("cluster")
    def on_role(override):
        moved = override != machine.override  # the VIP came or went
        machine.set_override(override)
        if moved:
            client.reconnect()

    watcher = w.role_watcher = RoleFileWatcher(config.role_file, on_role, reactor,
                                               _inotify_factory(reactor))
    watcher.setServiceParent(cluster)
    w.health_problems["roleFile"] = watcher.describe_problem
    cluster.setServiceParent(w.top)

    w.sealed_sources.append(_sealed_secret)
    w.guard = ReadOnlyGuard(state)
    # /api/health is 200 only once cluster membership is loaded (before
    # that, mutations answer 503 STARTING).
    w.health_checks["cluster"] = lambda: state.loaded
    w.readiness = Readiness(state, machine, client.status, reactor,
                            lambda: _dns_healthy(w), window=config.sync_freshness,
                            role_file_problem=watcher.describe_problem)
    # The API's leader checks (join, new leader URL) prove the leader is
    # reachable now: a fresh connection each time.  A kept one may lead to
    # the node that held the VIP before it moved (a reset), and a failed
    # POST is not retried on a new connection.
    check_http = HTTPClient(Agent(reactor, pool=QuietHTTPConnectionPool(reactor, persistent=False),
                                  connectTimeout=5))
    w.areas.append(ClusterApi(
        state=state, machine=machine, readiness=w.readiness, sync_status=client.status,
        client=client, server=server, store=w.store, http=check_http, clock=reactor,
        role_file=config.role_file, vip=lambda: _configured_vip(w),
        is_local=is_local_address))
    w.areas.append(ClusterSyncApi(server))
    w.status_providers["cluster"] = lambda: _component(state, machine, w.readiness, client)


def _component(state, machine, readiness, client):
    """The cluster's line in /api/system/status."""
    out = dict(readiness.answer())  # ok, role (effective), lastSync, reason
    configured = state.role if state.loaded else None
    out["configuredRole"] = configured
    out["failover"] = is_failover(configured, machine.override)
    out["message"] = node_message(configured, machine.override, client.status)
    if state.role == "follower":
        error = client.status.last_error
        out["lastError"] = error["code"] if error and client.status.failures else None
    return out


async def _sealed_secret(ctx):
    """For L{sentinel.keycheck}: the cluster secret, sealed under the node key."""
    stored = await ctx.get_local(K_MEMBERSHIP)
    if isinstance(stored, dict) and stored.get("secret"):
        return [("the cluster secret", stored["secret"], SECRET_AAD)]
    return []


def poll_wait(freshness):
    """How long the leader may hold an idle poll: a quarter of the readiness
    window (at most 5 s), so an idle but healthy follower stays ready."""
    return max(0.5, min(5.0, freshness / 4))


def _inotify_factory(reactor):
    try:
        from twisted.internet import inotify
    except ImportError:  # not Linux: the watcher re-reads periodically
        return None
    return lambda: inotify.INotify(reactor)


def _dns_healthy(w):
    """The DNS self-probe (dns subsystem); no DNS subsystem, nothing to check."""
    probe = getattr(w, "dns_probe", None)
    if probe is not None:
        return bool(probe.healthy())
    check = w.health_checks.get("dns")
    return bool(check()) if check is not None else True


async def _configured_vip(w):
    """The VIP from the HA settings (w.ha_state), else from config.json."""
    ha = getattr(w, "ha_state", None)
    if ha is not None:
        settings, _ = await ha.load()
        return getattr(settings, "vip_address", None)
    try:
        with open(w.config.ha_config_file, encoding="utf-8") as f:
            vip = json.load(f).get("vip")
    except (OSError, ValueError, AttributeError):
        return None
    # config.json holds the VIP with its prefix length ("192.168.1.53/24").
    return vip.split("/")[0] if isinstance(vip, str) and vip else None


def is_local_address(host):
    """True if ``host`` (an IP literal) is an address of this machine."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((host, 0))
                return True
        except (OSError, ValueError):
            continue
    return False
