"""
An in-memory API for route tests: a real SQLite store in a temporary
directory, the real Site/Gate/areas, and real HTTP requests through
treq's RequestTraversalAgent (StubTreq's agent) -- no sockets.  Time is a
L{task.Clock}; password hashing uses cheap scrypt parameters.
"""

import json as jsonlib
import os
import shutil
import tempfile
from http.cookies import SimpleCookie

from treq.testing import RequestTraversalAgent
from twisted.internet import reactor, task
from twisted.internet.defer import succeed
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from sentinel.api.auth import AuthApi
from sentinel.dns.access import Access
from sentinel.api.health import HealthApi
from sentinel.api.maintenance import MaintenanceApi
from sentinel.api.notifications import NotificationsApi
from sentinel.api.openapi import OpenApiApi
from sentinel.api.secrets import SecretsApi
from sentinel.api.settings import SettingsApi
from sentinel.api.system import SystemApi
from sentinel.api.site import Gate, SentinelRequest, Site
from sentinel.auth import (
    AdminAuthenticator, ApiTokens, LoginLimits, PasswordHasher, Sessions, Users,
)
from sentinel.crypto import SecretBox
from sentinel.secrets import Secrets
from sentinel.store import Store
from sentinel.store.database import SqliteDatabase

BASE = "http://sentinel.test"
SAME_ORIGIN = "http://sentinel.test"
EVIL_ORIGIN = "http://evil.example"
CHEAP = (10, 1, 1)  # scrypt parameters for tests only
ADMIN, PASSWORD = "admin", "correct horse battery"
START = 1_700_000_000.0


@implementer(IBodyProducer)
class _Bytes:
    def __init__(self, body):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return jsonlib.loads(self.body.decode("utf-8"))

    def header(self, name):
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    def cookies(self):
        jar = SimpleCookie()
        for value in self.headers.getRawHeaders("set-cookie", []):
            jar.load(value)
        return jar

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


_NOTHING = object()


def _request_class(client):
    class Request(SentinelRequest):
        def getClientAddress(self):
            return client.peer or super().getClientAddress()

    return Request


class Client:
    """Real HTTP requests against a resource, in memory."""

    def __init__(self, resource, base=BASE):
        self._agent = RequestTraversalAgent(resource)
        # Requests as the daemon's site makes them (Site.site): the body
        # cap, and form bodies never parsed.
        factory = self._agent._serverFactory
        factory.requestFactory = _request_class(self)
        factory._parsePOSTFormSubmission = False
        self.base = base
        # The address requests come from (an IPv4Address/IPv6Address), or
        # None for the agent's fixed 127.0.0.1.
        self.peer = None

    async def _settle(self, d, timeout=10.0):
        # The agent runs on a memory reactor: pump it until d has a result
        # (d.called is not enough: d may be paused on an inner Deferred).
        done = []

        def seen(result):
            done.append(True)
            return result

        d.addBoth(seen)
        waited = 0.0
        while not done:
            self._agent.flush()
            if done:
                break
            await task.deferLater(reactor, 0.002, lambda: None)
            waited += 0.002
            if waited > timeout:
                raise AssertionError("no response from the in-memory site")
        return await d

    async def request(self, method, path, json=_NOTHING, data=None, headers=None,
                      cookie=None, token=None):
        hdrs = Headers()
        body = data
        if json is not _NOTHING:
            body = jsonlib.dumps(json).encode()
            hdrs.setRawHeaders("content-type", ["application/json"])
        for k, v in (headers or {}).items():
            hdrs.setRawHeaders(k, [v])
        if cookie:
            hdrs.setRawHeaders("cookie", [cookie])
        if token:
            hdrs.setRawHeaders("authorization", [f"Bearer {token}"])
        producer = _Bytes(body if isinstance(body, bytes) else (body or "").encode()) \
            if body is not None else None
        response = await self._settle(self._agent.request(
            method.encode(), (self.base + path).encode(), hdrs, producer))
        content = await self._settle(readBody(response))
        return Response(response.code, response.headers, content)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=_NOTHING, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=_NOTHING, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=_NOTHING, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def session_cookie(response):
    morsel = response.cookies().get("sentinel_session")
    return f"sentinel_session={morsel.value}" if morsel and morsel.value else None


class Api:
    """The areas of the API, wired like the daemon wires them."""

    def __init__(self, testcase, guard=None, extra_areas=()):
        self.testcase = testcase
        self.dir = tempfile.mkdtemp(prefix="sentinel-api-test-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.clock = task.Clock()
        self.clock.advance(START)
        db = SqliteDatabase(os.path.join(self.dir, "sentinel.db"), reactor)
        self.store = Store(db, self.clock)
        self.secrets = Secrets(self.store, SecretBox(b"k" * 32))
        self.hasher = PasswordHasher(params=CHEAP)
        self.users = Users(self.store, self.hasher, self.clock)
        self.sessions = Sessions(self.store, self.clock)
        self.api_tokens = ApiTokens(self.store, self.clock)
        self.throttle = LoginLimits(self.clock)
        self.authenticator = AdminAuthenticator(self.sessions, self.api_tokens)
        self.authenticators = {"admin": self.authenticator}
        self.status_providers = {}
        self.entity_validators = {}
        self.secret_catalog = {}
        self.areas = [
            HealthApi(self.store),
            AuthApi(self.users, self.sessions, self.api_tokens, self.throttle,
                    self.authenticator, setup_from=Access().allowed_ip),
        ]
        self.areas += [
            SettingsApi(self.store),
            SecretsApi(self.secrets, self.secret_catalog),
            NotificationsApi(self.store),
            MaintenanceApi(self.store, self.secrets, self.entity_validators, self.clock),
            SystemApi(self.store, self.status_providers, self.clock),
        ]
        self.areas += list(extra_areas)
        self.areas.append(OpenApiApi(lambda: self.site.endpoints, self.authenticators))
        self.gate = Gate(self.authenticators, guard=guard)
        self.site = Site(self.areas, self.gate)
        self.client = Client(self.site.resource())

    async def start(self):
        await self.store.start()
        self.testcase.addCleanup(self.store.stop)
        return self

    async def setup_admin(self):
        """Create the admin; returns a session cookie header value."""
        r = await self.client.post("/api/auth/setup",
                                   json={"username": ADMIN, "password": PASSWORD})
        assert r.status == 201, r
        return session_cookie(r)

    async def login(self, username=ADMIN, password=PASSWORD):
        r = await self.client.post("/api/auth/login",
                                   json={"username": username, "password": password})
        assert r.status == 200, r
        return session_cookie(r)

    async def token(self, cookie, name="script"):
        r = await self.client.post("/api/auth/tokens", json={"name": name}, cookie=cookie)
        assert r.status == 201, r
        return r.json()["token"]


async def make_api(testcase, **kw):
    return await Api(testcase, **kw).start()
