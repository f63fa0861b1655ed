"""
The filtering API areas on a real Site over a real SQLite store, driven
with treq's StubTreq in memory; a fake admin authenticator in the gate.
"""

import json

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from sentinel.api.base import Principal
from sentinel.api.blocklists import BlocklistsApi
from sentinel.api.clients import ClientsApi
from sentinel.api.filtering import FilteringApi
from sentinel.api.protection import ProtectionApi
from sentinel.api.querylog import QueryLogApi
from sentinel.api.rewrites import RewritesApi
from sentinel.api.rules import RulesApi
from sentinel.api.site import Gate, Site
from sentinel.api.stats import StatsApi
from sentinel.dns.decision import PolicySource
from sentinel.filtering.engine import PolicyEngine
from sentinel.filtering.pauseclock import PauseClock
from sentinel.filtering.querylog import QueryLog, QueryLogService
from sentinel.filtering.refresher import BlocklistRefresher
from tests.filtering.helpers import wire
from tests.filtering.listserver import ListResource
from tests.filtering.storehelp import inline, open_store

TOKEN = "Bearer test-admin"


class FakeAdmin:
    async def authenticate(self, request):
        if request.getHeader("authorization") == TOKEN:
            return Principal("admin", "token")
        return None


class Result:
    def __init__(self, code, headers, body):
        self.code, self.headers, self.body = code, headers, body

    def json(self):
        return json.loads(self.body)


class ApiHarness:
    async def start(self, testcase, now=1_700_000_000.0, dns_stats=None, postgres=False):
        self.store = await open_store(testcase, postgres)
        self.clock = Clock()
        self.clock.advance(now)
        self.source = PolicySource()
        self.engine = PolicyEngine(self.store, self.clock, self.source, run=inline)
        self.engine.startService()
        testcase.addCleanup(self.engine.stopService)
        await self.engine.settled()
        self.querylog = QueryLog(capacity=1000)
        self.querylog_service = QueryLogService(self.querylog, self.store, self.clock)
        self.lists = ListResource()
        self.refresher = BlocklistRefresher(self.store, self.clock, StubTreq(self.lists))
        self.pauses = PauseClock(self.store, self.clock)
        self.pauses.startService()
        testcase.addCleanup(self.pauses.stopService)
        self.areas = [
            ClientsApi(self.store), RulesApi(self.store), RewritesApi(self.store),
            BlocklistsApi(self.store, lambda: self.refresher),
            ProtectionApi(self.store, self.clock, self.pauses), FilteringApi(self.store, self.engine),
            QueryLogApi(self.store, self.querylog_service),
            StatsApi(self.store, self.clock, self.querylog_service, self.engine, dns_stats),
        ]
        self.site = Site(self.areas, Gate(authenticators={"admin": FakeAdmin()}))
        self.http = StubTreq(self.site.resource())
        return self

    async def call(self, method, path, body=None, auth=True, headers=None):
        h = {"Authorization": TOKEN} if auth else {}
        h.update(headers or {})
        kwargs = {"headers": h}
        if body is not None:
            kwargs["json"] = body
        response = await self.pump(
            self.http.request(method, "http://sentinel.test" + path, **kwargs))
        content = await self.pump(response.content())
        return Result(response.code, response.headers, content)

    async def pump(self, d):
        """StubTreq delivers asynchronous answers only when flushed."""
        done = []
        d.addBoth(lambda result: done.append(True) or result)
        while not done:
            self.http.flush()
            if not done:
                await deferLater(reactor, 0.001)
        return await d

    def decide(self, name, ip="192.168.1.50", qtype=1):
        d = self.source.current.decide(ip, wire(name), qtype)
        return d.action, d.reason
