"""The API framework: routing, admission order, body/query/param handling, errors."""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.api.base import ApiError, Raw, Reply, endpoint
from sentinel.api.site import MAX_REQUEST_BODY, Gate, Site
from sentinel.api.base import Principal
from sentinel.services import ListeningService
from sentinel.store import StoreUnavailable
from sentinel.store.database import StoreTimeout
from tests.api.harness import EVIL_ORIGIN, Client

ITEM = {"type": "object", "required": ["n"], "additionalProperties": False,
        "properties": {"n": {"type": "integer"}, "ip": {"type": "string", "format": "ipv4"}}}


class Example:
    calls = 0

    @endpoint("GET", "/api/things", auth="none", query={"limit": {"type": "integer",
                                                                  "minimum": 1}})
    async def list(self, call):
        return {"limit": call.query.get("limit")}

    @endpoint("POST", "/api/things", body=ITEM, status=201, max_body=100)
    async def create(self, call):
        Example.calls += 1
        return Reply(201, {"got": call.body, "who": call.principal.username})

    @endpoint("GET", "/api/things/{thing_id}", auth="none",
              params={"thing_id": {"type": "integer", "minimum": 1}})
    async def get(self, call, thing_id):
        return {"id": thing_id, "type": type(thing_id).__name__}

    @endpoint("DELETE", "/api/things/{thing_id}", auth="none", status=204)
    async def delete(self, call, thing_id):
        return Reply(204)

    @endpoint("GET", "/api/boom", auth="none")
    async def boom(self, call):
        raise KeyError("secret internals")

    @endpoint("GET", "/api/down", auth="none")
    async def down(self, call):
        raise StoreUnavailable("db gone")

    @endpoint("GET", "/api/slow", auth="none")
    async def slow(self, call):
        raise StoreTimeout("the database cancelled a statement after 15s (statement_timeout)")

    @endpoint("GET", "/api/many", auth="none")
    async def many(self, call):
        return {"items": [{"n": i, "name": f"rule {i} é"} for i in range(5000)]}

    @endpoint("GET", "/metrics", auth="none", content_type="text/plain")
    async def metrics(self, call):
        return Raw(b"x 1\n", "text/plain; version=0.0.4")


class Everyone:
    async def authenticate(self, request):
        if request.getHeader("authorization") == "Bearer ok":
            return Principal("tester", "token")
        return None


class Guard:
    def __init__(self):
        self.seen = []

    async def check(self, call):
        self.seen.append(call.spec.path)
        raise ApiError(409, "FOLLOWER_READONLY", "read-only")


def make(guard=None):
    site = Site([Example()], Gate({"admin": Everyone()}, guard=guard))
    return site, Client(site.resource())


AUTH = {"authorization": "Bearer ok"}


class RoutingTests(TestCase):
    async def test_unknown_path_404_wrong_method_405(self):
        _, client = make()
        r = await client.get("/api/nothing")
        self.assertEqual((r.status, r.json()["error"]), (404, "NOT_FOUND"))
        r = await client.request("PUT", "/api/things")
        self.assertEqual((r.status, r.json()["error"]), (405, "METHOD_NOT_ALLOWED"))
        self.assertIn("POST", r.header("allow"))
        self.assertIn("GET", r.header("allow"))
        r = await client.get("/elsewhere")
        self.assertEqual(r.status, 404)

    async def test_security_headers_and_json(self):
        _, client = make()
        r = await client.get("/api/things?limit=5")
        self.assertEqual(r.json(), {"limit": 5})
        self.assertEqual(r.header("content-type"), "application/json; charset=utf-8")
        self.assertEqual(r.header("cache-control"), "no-store")
        self.assertEqual(r.header("x-content-type-options"), "nosniff")
        # An API answer is never a document: nothing in it may run or be framed.
        for path in ("/api/things?limit=5", "/api/nope", "/api/down"):
            r = await client.get(path)
            self.assertEqual(r.header("content-security-policy"),
                             "default-src 'none'; frame-ancestors 'none'; sandbox", path)
            self.assertEqual(r.header("x-frame-options"), "DENY", path)
            self.assertEqual(r.header("referrer-policy"), "no-referrer", path)

    async def test_query_errors(self):
        _, client = make()
        for q in ("limit=abc", "limit=0", "limit=1_0", "limit=99999999999999999999999",
                  "limit=1.5"):
            r = await client.get("/api/things?" + q)
            self.assertEqual((r.status, r.json()["error"]), (400, "VALIDATION_ERROR"), q)
            self.assertEqual(r.json()["details"][0]["field"], "limit")
        r = await client.get("/api/things?unknown=1")
        self.assertEqual(r.status, 200)

    async def test_path_params_converted_or_404(self):
        _, client = make()
        r = await client.get("/api/things/7")
        self.assertEqual(r.json(), {"id": 7, "type": "int"})
        for bad in ("0", "x", "1.5", "%00", "1_0", "99999999999999999999", "+"):
            r = await client.get("/api/things/" + bad)
            self.assertEqual((r.status, r.json()["error"]), (404, "NOT_FOUND"), bad)

    async def test_internal_errors_are_500_without_details(self):
        _, client = make()
        r = await client.get("/api/boom")
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json()["error"], "INTERNAL_ERROR")
        self.assertNotIn(b"secret internals", r.body)
        self.assertNotIn(b"Traceback", r.body)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    async def test_store_unavailable_is_503(self):
        _, client = make()
        r = await client.get("/api/down")
        self.assertEqual((r.status, r.json()["error"]), (503, "STORE_UNAVAILABLE"))
        self.assertEqual(r.header("retry-after"), "5")

    async def test_long_answers_are_encoded_off_the_reactor(self):
        # json.dumps holds the GIL for all of a 7 MB answer (~100 ms of DNS).
        from twisted.python.threadable import isInIOThread

        from sentinel.api import site as site_module

        seen, real = [], site_module.encode_in_pieces
        self.patch(site_module, "encode_in_pieces",
                   lambda value: seen.append(isInIOThread()) or real(value))
        _, client = make()
        r = await client.get("/api/many")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["items"][4999], {"n": 4999, "name": "rule 4999 é"})
        self.assertEqual(seen, [False])
        await client.get("/api/things/1")  # a short one: no thread
        self.assertEqual(seen, [False])

    async def test_a_statement_timeout_is_explained(self):
        # A stats page over a week of a large query log on PostgreSQL ran into
        # the 15 s statement_timeout and was told "the database is not
        # reachable right now; try again shortly" -- which failed the same way.
        _, client = make()
        r = await client.get("/api/slow")
        self.assertEqual((r.status, r.json()["error"]), (503, "QUERY_TIMEOUT"))
        self.assertIn("choose a shorter window", r.json()["message"])
        self.assertEqual(r.header("retry-after"), "5")

    async def test_raw_and_204(self):
        _, client = make()
        r = await client.get("/metrics")
        self.assertEqual((r.status, r.body), (200, b"x 1\n"))
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4")
        r = await client.delete("/api/things/1", headers={"origin": "http://sentinel.test"})
        self.assertEqual((r.status, r.body), (204, b""))

    def test_duplicate_routes_refused(self):
        self.assertRaises(ValueError, Site, [Example(), Example()], Gate())

    def test_params_must_be_in_the_path(self):
        self.assertRaises(ValueError, endpoint, "GET", "/api/x", params={"y": {}})


class BodyTests(TestCase):
    async def test_order_and_errors(self):
        _, client = make()
        post = client.post
        # Authentication comes before anything about the body.
        r = await post("/api/things", data=b"{", headers={"content-type": "application/json"})
        self.assertEqual(r.status, 401)
        cases = [
            (b"{", "application/json", 400, "BAD_JSON"),
            (b'{"n": NaN}', "application/json", 400, "BAD_JSON"),
            (b"[" * 5000 + b"]" * 5000, "application/json", 413, "BODY_TOO_LARGE"),
            (b'{"n": 1}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
            (b'{"n": "1"}', "application/json", 400, "VALIDATION_ERROR"),
            (b'{"n": 1, "ip": "1.2.3.999"}', "application/json", 400, "VALIDATION_ERROR"),
            (b'{"n": 1, "x": 2}', "application/json", 400, "VALIDATION_ERROR"),
            (b"", "application/json", 400, "VALIDATION_ERROR"),  # {} lacks "n"
            (b" ", "application/json", 400, "BAD_JSON"),  # only no body at all is {}
            (b"\x0c", "application/json", 400, "BAD_JSON"),
            (b'{"n": 9223372036854775808}', "application/json", 400, "BAD_JSON"),  # > 64 bits
            (b"\xff\xfe", "application/json", 400, "BAD_JSON"),
            (b'{"n": 1, "ip": "\\udc00"}', "application/json", 400, "BAD_JSON"),  # lone surrogate
        ]
        for body, ctype, status, code in cases:
            r = await post("/api/things", data=body, headers=dict(AUTH, **{
                "content-type": ctype}))
            self.assertEqual((r.status, r.json()["error"]), (status, code), body[:20])
        r = await post("/api/things", json={"n": 1, "ip": "10.0.0.1"}, headers=AUTH)
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json(), {"got": {"n": 1, "ip": "10.0.0.1"}, "who": "tester"})
        r = await post("/api/things", data=b'{"n": 3, "ip": "\\ud83d\\ude00"}', headers=dict(
            AUTH, **{"content-type": "application/json"}))  # a valid pair is fine (then 400: not ipv4)
        self.assertEqual((r.status, r.json()["details"][0]["field"]), (400, "ip"))
        r = await post("/api/things", data=b'{"n": 2}', headers=dict(AUTH, **{
            "content-type": "application/json; charset=utf-8"}))
        self.assertEqual(r.status, 201)

    async def test_deep_nesting_is_400_not_500(self):
        site = Site([Deep()], Gate())
        client = Client(site.resource())
        r = await client.post("/api/deep", data=b"[" * 100000 + b"]" * 100000,
                              headers={"content-type": "application/json"})
        self.assertEqual(r.status, 400)

    async def test_cross_site_before_authentication(self):
        _, client = make()
        r = await client.post("/api/things", json={"n": 1}, headers={"origin": EVIL_ORIGIN})
        self.assertEqual((r.status, r.json()["error"]), (403, "CROSS_SITE_REQUEST"))

    async def test_guard_after_authentication_before_the_handler(self):
        guard = Guard()
        _, client = make(guard)
        before = Example.calls
        r = await client.post("/api/things", json={"n": 1})
        self.assertEqual(r.status, 401)
        self.assertEqual(guard.seen, [])
        r = await client.post("/api/things", json={"n": 1}, headers=AUTH)
        self.assertEqual((r.status, r.json()["error"]), (409, "FOLLOWER_READONLY"))
        self.assertEqual(Example.calls, before)
        r = await client.get("/api/things")  # reads are never guarded
        self.assertEqual(r.status, 200)


class Deep:
    @endpoint("POST", "/api/deep", auth="none", body={"type": "array"},
              max_body=1024 * 1024)
    async def deep(self, call):
        return {}


class HardCapTests(SynchronousTestCase):
    def test_body_over_the_hard_cap_is_refused_without_buffering(self):
        site, _ = make()
        factory = site.site()
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
        transport = StringTransport()
        proto.makeConnection(transport)
        size = MAX_REQUEST_BODY + 10
        proto.dataReceived(
            b"POST /api/things HTTP/1.1\r\nHost: sentinel.test\r\nAuthorization: Bearer ok\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * (1024 * 1024)
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            proto.dataReceived(piece)
            sent += len(piece)
        out = transport.value()
        self.assertIn(b"413", out.split(b"\r\n", 1)[0])
        self.assertIn(b"BODY_TOO_LARGE", out)
        proto.connectionLost(None)


def recording(factory):
    """The requests ``factory`` makes from now on, in a list."""
    from sentinel.api.inputs import body_size
    from sentinel.api.site import SentinelRequest

    made = []

    class Recording(SentinelRequest):
        held = 0  # the most body bytes it held

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def handleContentChunk(self, data):
            super().handleContentChunk(data)
            self.held = max(self.held, body_size(self))

    factory.requestFactory = Recording
    return made


def post_headers(path, size=None, chunked=False):
    length = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % size
    return (b"POST " + path + b" HTTP/1.1\r\nHost: sentinel.test\r\n"
            b"Content-Type: application/json\r\n" + length + b"\r\n")


class BodyLimitByPathTests(TestCase):
    """
    The body arrives before routing and authentication: what a request may
    make the server hold is decided by its path (DEFAULT_MAX_BODY, or
    MAX_REQUEST_BODY on the routes that take more), and only
    HttpLimits.large_bodies requests hold more than DEFAULT_MAX_BODY at once.
    """

    def connect(self, factory, source):
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", source))
        transport = StringTransport()
        proto.makeConnection(transport)
        self.addCleanup(proto.connectionLost, None)
        return proto, transport

    def test_small_routes_buffer_no_more_than_the_default(self):
        from sentinel.api.base import DEFAULT_MAX_BODY

        site, _ = make()
        factory = site.site()
        made = recording(factory)
        # 1 MiB announced (was buffered in full, also without credentials).
        proto, transport = self.connect(factory, 5)
        proto.dataReceived(post_headers(b"/api/things", 1024 * 1024)[:-2]
                           + b"Authorization: Bearer ok\r\n\r\n")
        proto.dataReceived(b"x" * (1024 * 1024))
        self.assertIn(b"413", transport.value().split(b"\r\n", 1)[0])
        # Chunked, unauthenticated (401): buffering stopped at the limit.
        proto, transport = self.connect(factory, 6)
        proto.dataReceived(post_headers(b"/api/things", chunked=True))
        for _ in range(16):
            proto.dataReceived(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
        proto.dataReceived(b"0\r\n\r\n")
        self.assertIn(b"401", transport.value().split(b"\r\n", 1)[0])
        self.assertEqual(len(made), 2)
        # (refused by its length before reading: nothing held; chunked: the limit)
        self.assertEqual([r.held for r in made], [0, DEFAULT_MAX_BODY])

    async def test_large_bodies_at_once_are_capped(self):
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        site = Site([Deep()], Gate())
        factory = site.site()
        self.assertEqual(factory.large_paths, frozenset([b"/api/deep"]))
        size = 200_000
        body = b"[" + b" " * (size - 2) + b"]"
        conns = [self.connect(factory, 10 + i) for i in range(3)]
        for proto, _ in conns:
            proto.dataReceived(post_headers(b"/api/deep", size) + body[:100_000])
        self.assertEqual(factory.large_bodies, 2)
        for proto, _ in conns:
            proto.dataReceived(body[100_000:])

        async def statuses(conns):
            for _ in range(500):  # the large bodies are parsed in a thread
                if all(t.value() for _, t in conns):
                    break
                await deferLater(reactor, 0.01, lambda: None)
            return [t.value().split(b"\r\n", 1)[0].split(b" ")[1] for _, t in conns]

        self.assertEqual(await statuses(conns), [b"200", b"200", b"503"])
        self.assertIn(b"BUSY", conns[2][1].value())
        self.assertEqual(factory.large_bodies, 0)  # released when answered
        again = self.connect(factory, 20)
        again[0].dataReceived(post_headers(b"/api/deep", size) + body)
        self.assertEqual(await statuses([again]), [b"200"])
        self.assertEqual(factory.large_bodies, 0)


class StopTests(SynchronousTestCase):
    """Stopping the HTTP service closes the port, then every open connection
    (the keepalived sidecar's watch among them): a node being stopped leaves
    the VRRP election when shutdown starts, not when the process exits."""

    def test_stopping_closes_the_port_then_every_connection(self):
        site, _ = make()
        factory = site.site()
        transports = []
        for source in (5, 6):
            proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", source))
            transports.append(StringTransport())
            proto.makeConnection(transports[-1])
            self.addCleanup(proto.connectionLost, None)  # its idle timer

        class Port:
            closed = Deferred()

            def stopListening(self):
                return self.closed

        port = Port()
        service = ListeningService("HTTP", 8080, "tcp", lambda: port,
                                   close_connections=factory.close_connections)
        service.startService()
        stopped = service.stopService()
        # Not before the port is closed (a reconnect must be refused).
        self.assertEqual([t.disconnecting for t in transports], [False, False])
        port.closed.callback(None)
        self.assertEqual([t.disconnected for t in transports], [True, True])  # aborted
        self.successResultOf(stopped)


class JsonOutputTests(SynchronousTestCase):
    def test_lone_surrogates_in_data_are_escaped_not_a_500(self):
        from sentinel.api.site import json_bytes

        self.assertEqual(json_bytes({"a": "é"}), '{"a":"é"}'.encode())
        self.assertEqual(json_bytes({"a": "x\udc00"}), b'{"a":"x\\udc00"}')

    def test_pieces_are_the_same_bytes(self):
        from sentinel.jsonout import PIECE_ITEMS, encode_in_pieces, is_large, json_bytes

        many = PIECE_ITEMS * 3
        values = [
            {"a": "é", "b": [1, 2.5, None, True]},
            {str(i): {"n": i, "s": "x\udc00" if i == 7 else "ok"} for i in range(many)},
            {i: [list(range(many)), {}, []] for i in range(many)},  # int keys: "1"
            {True: 1, None: 2, 1.5: 3, **{f"k{i}": i for i in range(many)}},
            [[{"deep": [i] * many}] for i in range(many)],
            (1, 2, "three"), "plain", 3, None,
        ]
        for value in values:
            self.assertEqual(encode_in_pieces(value), json_bytes(value))
        self.assertTrue(is_large({"entities": {"rule": dict.fromkeys(map(str, range(3000)))}}))
        self.assertFalse(is_large({"items": list(range(100)), "x": {"y": 1}}))
