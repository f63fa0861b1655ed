"""Shared helpers for the cluster unit tests: real stores, real state."""

import os
import shutil
import tempfile

from twisted.internet import reactor

from sentinel.crypto import SecretBox
from sentinel.secrets import Secrets
from sentinel.store import Store
from sentinel.store.database import PostgresDatabase, SqliteDatabase
from tests.support import pg


async def open_store(testcase, dialect="sqlite", clock=reactor):
    if dialect == "sqlite":
        directory = tempfile.mkdtemp(prefix="sentinel-cluster-")
        testcase.addCleanup(shutil.rmtree, directory, True)  # after store.stop (LIFO)
        db = SqliteDatabase(os.path.join(directory, "sentinel.db"), reactor)
    else:
        url, drop = pg.create_database()
        testcase.addCleanup(drop)
        db = PostgresDatabase(url, reactor)
    store = Store(db, clock)
    await store.start()
    testcase.addCleanup(store.stop)
    return store


def new_box():
    return SecretBox(os.urandom(32))


class Node:
    """A store + node key + secrets, like one daemon's storage."""

    def __init__(self, store, box=None):
        self.store = store
        self.box = box or new_box()
        self.secrets = Secrets(store, self.box)


async def live(node):
    """{(kind, key): data} with secrets unsealed: what must converge."""
    snap = await node.store.snapshot()
    out = {}
    for e in snap.entities:
        data = e.data
        if e.kind == "secret":
            data = {"value": node.secrets.unseal(e.key, data)}
        out[(e.kind, e.key)] = data
    return out


# -- a whole node's cluster side, in memory (no sockets) ---------------------

from twisted.internet.task import LoopingCall  # noqa: E402

from sentinel.api.base import Principal  # noqa: E402
from sentinel.api.cluster import ClusterApi  # noqa: E402
from sentinel.api.cluster_sync import ClusterSyncApi  # noqa: E402
from sentinel.api.site import Gate, Site  # noqa: E402
from sentinel.cluster.client import SyncClient  # noqa: E402
from sentinel.cluster.guard import Readiness, ReadOnlyGuard  # noqa: E402
from sentinel.cluster.plan import Applier  # noqa: E402
from sentinel.cluster.roles import RoleMachine  # noqa: E402
from sentinel.cluster.server import SyncServer  # noqa: E402
from sentinel.cluster.state import ClusterState  # noqa: E402


class FakeAdmin:
    """Until the real admin authenticator: a request is an admin's if it
    carries 'Authorization: Bearer admin'."""

    async def authenticate(self, request):
        if request.getHeader("authorization") == "Bearer admin":
            return Principal("admin", "token")
        return None


ADMIN = {"Authorization": "Bearer admin"}


class Pump:
    """Deliver StubTreq traffic while the test awaits real (threaded) stores."""

    def __init__(self, testcase):
        self.stubs = []
        self._loop = LoopingCall(self._flush)
        self._loop.start(0.002)
        testcase.addCleanup(self._loop.stop)

    def add(self, stub):
        self.stubs.append(stub)
        return stub

    def _flush(self):
        for stub in self.stubs:
            stub.flush()


class ClusterNode(Node):
    """One node: store, state, role machine (groups faked), server, client, API.
    areas: more API areas, or a callable(node) returning them."""

    def __init__(self, store, clock, areas=(), wait=5.0):
        super().__init__(store)
        self.clock = clock
        self.state = ClusterState(store, self.box, clock)
        self.groups_applied = []
        self.machine = RoleMachine(self._apply)
        self.state.listen(lambda m: self.machine.set_configured(m.role))
        self.server = SyncServer(store, self.state, self.secrets, clock)
        self.leader_http = None  # set with connect()
        self.client = SyncClient(self.state, store, Applier(self.secrets), _Lazy(self),
                                 clock, wait=wait)
        self.dns_ok = True
        self.readiness = Readiness(self.state, self.machine, self.client.status, clock,
                                   lambda: self.dns_ok)
        self.api = ClusterApi(
            state=self.state, machine=self.machine, readiness=self.readiness,
            sync_status=self.client.status, client=self.client, server=self.server,
            store=store, http=_Lazy(self), clock=clock, role_file="/nonexistent/role")
        gate = Gate({"admin": FakeAdmin(), "cluster": self.server,
                     "cluster-join": self.server.join_auth}, ReadOnlyGuard(self.state))
        areas = areas(self) if callable(areas) else areas
        self.site = Site([self.api, ClusterSyncApi(self.server)] + list(areas), gate)
        self.resource = self.site.resource()

    def _apply(self, group):
        self.groups_applied.append(group)
        self.server.serving = group == "leader_only"

    async def start(self):
        await self.state.load()
        return self


class _Lazy:
    """The HTTP client a node uses to reach 'the leader URL'."""

    def __init__(self, node):
        self._node = node

    def request(self, *args, **kw):
        return self._node.leader_http.request(*args, **kw)
