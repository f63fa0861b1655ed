"""
Composition of the HTTP side: every area's endpoints go into one Klein app
per mount point (``/api``, ``/metrics``), behind one admission gate and one
error handler; anything else is served by the web UI resource.
"""

from io import BytesIO

import attr
from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from sentinel.api.hosts import HostPolicy, refusal
from sentinel.jsonout import encode_in_pieces, is_large, json_bytes
from sentinel.api.base import DEFAULT_MAX_BODY, ApiError, Call, Raw, Reply, endpoints_of
from sentinel.api.inputs import (
    MAX_REQUEST_BODY, CompiledRoute, body_size, check, compile_schema, read_body,
    read_params, read_query, validate,
)
from sentinel.auth.throttle import client_key
from sentinel.store.database import StoreTimeout, StoreUnavailable

log = Logger()

# Re-exported: areas and tests import these from here.
__all__ = ["Gate", "MAX_REQUEST_BODY", "SentinelRequest", "Site", "check", "check_same_origin",
           "compile_schema", "validate"]

JSON_TYPE = b"application/json; charset=utf-8"
NOT_FOUND = ApiError(404, "NOT_FOUND", "No such page.")
# The media types a cross-site form or "simple" request can carry.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


class SentinelRequest(server.Request):
    """
    A request that stops buffering a body larger than its route may take,
    and whose headers read as text (``getHeader("name")``) are UTF-8 or a 400:
    Twisted decodes them strictly, so any header with other bytes would
    otherwise be an internal error wherever it is read.

    The body is received before any route or authentication is looked at,
    so what it may hold is decided by the path alone: DEFAULT_MAX_BODY,
    except on the few routes that take more (``large_paths`` of the site:
    a backup import, up to MAX_REQUEST_BODY), and there only
    ``HttpLimits.large_bodies`` requests at once hold more than
    DEFAULT_MAX_BODY (the others: 503 BUSY).  Before, any request to any
    path buffered up to 16 MiB (in a temporary file), before its
    authentication was checked: 256 connections, 4 GiB.
    """

    too_large = False
    refused = None  # an ApiError to answer instead of reading the body
    _received = 0
    _limit = None
    _large = False  # holds one of the site's large-body slots

    def _body_limit(self):
        if self._limit is None:
            site = getattr(self.channel, "site", None)
            large = getattr(site, "large_paths", None)
            path = getattr(self.channel, "_path", None)  # the request line's target
            if large is None or path is None:
                self._limit = MAX_REQUEST_BODY
            else:
                self._limit = MAX_REQUEST_BODY if path.split(b"?", 1)[0] in large \
                    else DEFAULT_MAX_BODY
        return self._limit

    def getHeader(self, key):
        try:
            return super().getHeader(key)
        except UnicodeDecodeError:
            name = key.decode("ascii", "replace") if isinstance(key, bytes) else key
            raise ApiError(400, "BAD_HEADER",
                           f"The {name} header is not valid UTF-8.") from None

    def gotLength(self, length):
        if length is not None and length > self._body_limit():
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if self.too_large or self.refused is not None:
            return
        if self._received > self._body_limit():
            self.too_large = True
            return
        if self._received > DEFAULT_MAX_BODY and not self._large and \
                hasattr(self.channel.site, "large_bodies"):
            site = self.channel.site
            if site.large_bodies >= site.limits.large_bodies:
                self.refused = ApiError(
                    503, "BUSY", "Other large uploads are being received; try again shortly.",
                    headers={"retry-after": "10"})
                self.content = BytesIO()  # what came so far is dropped
                return
            site.large_bodies += 1
            self._large = True
            # (the request has no channel any more when this fires)
            self.notifyFinish().addBoth(self._release, site)
        super().handleContentChunk(data)

    def _release(self, _, site):
        if self._large:
            self._large = False
            site.large_bodies -= 1


class Gate:
    """
    Admission, in this order: cross-site check (mutations; for reads that
    need the admin, the Sec-Fetch-Site part), authentication (by the
    endpoint's ``auth`` name), then the read-only guard for mutations.

    authenticators: {"admin": obj with ``authenticate(request)`` ->
    Deferred/coroutine of Principal or None, ...}.  guard: obj with
    ``check(call)`` raising ApiError (e.g. 409 FOLLOWER_READONLY), or None.
    """

    def __init__(self, authenticators=None, guard=None):
        self.authenticators = dict(authenticators or {})
        self.guard = guard

    async def admit(self, call):
        request, spec = call.request, call.spec
        if spec.mutating:
            check_same_origin(request)
        elif spec.auth == "admin":
            check_fetch_site(request)
        if spec.auth != "none":
            authenticator = self.authenticators.get(spec.auth)
            principal = None
            if authenticator is not None:
                principal = await authenticator.authenticate(request)
            if principal is None:
                raise ApiError(401, "UNAUTHENTICATED", "Log in first (or send a valid API token).")
            call.principal = principal
        if spec.mutating and not spec.readonly_exempt and self.guard is not None:
            await self.guard.check(call)


def check_same_origin(request):
    """
    Refuse a state-changing request that a browser sent from another origin
    (CSRF): ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another port or
    sub-domain of this host: SameSite cookies go along) is refused, so is a
    form's media type (L{FORM_TYPES}, 415, even without a body), and the
    Origin header, when present, must name this host (scheme://Host).  Requests
    authenticating with a bearer token pass: a browser cannot add that
    header cross-site without a CORS preflight, which this server never
    grants, and the admin authenticator then ignores the cookie.  Other
    Authorization schemes (e.g. Basic from a reverse proxy, which browsers
    resend on their own) do not exempt a request.
    """
    if _bearer(request):
        return
    check_fetch_site(request)
    origin = request.getHeader("origin")
    if origin is not None:
        host = request.getHeader("host") or ""
        scheme, _, rest = origin.partition("://")
        if origin == "null" or scheme.lower() not in ("http", "https") \
                or rest.rstrip("/").lower() != host.lower():
            raise _cross_site()
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if ctype in FORM_TYPES:
        # What an HTML form (or a no-cors fetch) can send without a
        # preflight: never what the UI sends, even with no body.
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE",
                       "Send the body as application/json (or no body, without a "
                       "Content-Type).")


def check_fetch_site(request):
    """
    Refuse a request a browser made for a page of another origin on the same
    or another site (``Sec-Fetch-Site: same-site`` / ``cross-site``) -- for
    reads too: a SameSite cookie goes along with a same-site request, and a
    read may still have an effect (``GET /api/cluster/join-code`` issues a
    code) even though the page cannot see the answer.  Bearer requests pass
    (see L{check_same_origin}).
    """
    if not _bearer(request) and \
            request.getHeader("sec-fetch-site") in ("cross-site", "same-site"):
        raise _cross_site()


def _bearer(request):
    authorization = request.getHeader("authorization") or ""
    return authorization.strip().lower().startswith("bearer ")


def _cross_site():
    return ApiError(403, "CROSS_SITE_REQUEST", "Cross-site requests are not allowed.")


class Site:
    """Builds the root resource from areas, a gate and the UI resource."""

    def __init__(self, areas, gate, fallback=None, hosts=None):
        self.gate = gate
        self.hosts = hosts if hosts is not None else HostPolicy()
        self.endpoints = []  # [(spec, handler)]
        self.apps = {}
        self._seen = set()
        for area in areas:
            for spec, handler in endpoints_of(area):
                self._add(spec, handler)
        self.fallback = fallback

    def _add(self, spec, handler):
        key = (spec.method, spec.klein_path, spec.mount)
        if key in self._seen:
            raise ValueError(f"{spec.method} {spec.path} is declared twice")
        self._seen.add(key)
        app = self.apps.get(spec.mount)
        if app is None:
            app = self.apps[spec.mount] = Klein()
            app.handle_errors(Exception)(_render_error)
        self.endpoints.append((spec, handler))
        compiled = CompiledRoute(spec, handler)

        def route(request, **params):
            return ensureDeferred(self._dispatch(request, compiled, params))

        route.__name__ = f"{spec.method} {spec.path}"
        # strict_slashes=False: the mount root itself (e.g. GET /metrics, whose
        # path relative to the mount is "/") must not redirect to /metrics/.
        app.route(spec.klein_path, methods=[spec.method], endpoint=route.__name__,
                  strict_slashes=spec.klein_path != "/")(route)

    async def _dispatch(self, request, route, params):
        spec = route.spec
        _security_headers(request)
        call = Call(request=request, spec=spec)
        await self.gate.admit(call)
        if spec.max_body > DEFAULT_MAX_BODY and body_size(request) > DEFAULT_MAX_BODY:
            # Only routes that take more (a backup: up to 16 MiB): parsing and
            # checking it takes seconds, which the reactor (DNS) must not wait.
            await deferToThread(read_body, call, route.body)
        else:
            read_body(call, route.body)
        read_query(call, route.query)
        params = read_params(spec, route.params, params)
        result = await route.handler(call, **params)
        body = _render(request, spec, result)
        return body if isinstance(body, bytes) else await body

    def resource(self):
        root = _Root(self.fallback, self.hosts)
        for mount, app in self.apps.items():
            root.putChild(mount.encode(), app.resource())
        return root

    def site(self, reactor=None, limits=None):
        factory = _QuietableSite(self.resource(), limits=limits or HttpLimits(),
                                 reactor=reactor)
        large = [spec.path for spec, _ in self.endpoints if spec.max_body > DEFAULT_MAX_BODY]
        # A route with parameters is not told by its exact path: then every
        # path may send up to MAX_REQUEST_BODY (none is such a route today).
        factory.large_paths = None if any("{" in p for p in large) else \
            frozenset(p.encode() for p in large)
        factory.requestFactory = SentinelRequest
        factory.displayTracebacks = False
        return factory


@attr.s(frozen=True, auto_attribs=True)
class HttpLimits:
    """
    What one slow or greedy client may hold.  The HTTP server shares the
    reactor (and the file-descriptor limit) with DNS, so connections are
    capped and a request must arrive in time: ``idle`` seconds without a
    byte while reading a request or between requests, ``headers`` seconds
    for the request line and headers, ``request`` seconds for the whole
    request with its body (slowloris).  Time spent answering (the sync
    long-poll holds an answer up to 30 s) does not count.
    """

    idle: float = 30.0
    headers: float = 20.0
    request: float = 120.0
    connections: int = 256
    per_client: int = 32
    large_bodies: int = 2  # requests receiving a body over DEFAULT_MAX_BODY at once


class _Channel(http.HTTPChannel):
    """HTTPChannel with deadlines for receiving a request (HttpLimits)."""

    _headers_timer = _request_timer = None
    limits = HttpLimits()
    client = None

    def dataReceived(self, data):
        if self._request_timer is None and not self._handlingRequest:
            self._headers_timer = self.callLater(self.limits.headers, self._too_slow)
            self._request_timer = self.callLater(self.limits.request, self._too_slow)
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._cancel("_headers_timer")
        super().allHeadersReceived()

    def allContentReceived(self):
        self._cancel("_headers_timer")
        self._cancel("_request_timer")
        super().allContentReceived()

    def _cancel(self, name):
        timer = getattr(self, name)
        setattr(self, name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _too_slow(self):
        self._cancel("_headers_timer")
        self._cancel("_request_timer")
        self.timeoutConnection()

    def connectionLost(self, reason):
        self._cancel("_headers_timer")
        self._cancel("_request_timer")
        if self.client is not None:
            self.factory.connection_closed(self.client, self)
            self.client = None
        super().connectionLost(reason)


class _QuietableSite(server.Site):
    """
    Skips the access-log line of requests a handler marked
    ``request.quiet_log = True``: keepalived's readiness check every
    second and followers' sync polls would otherwise flood the log.

    Also enforces L{HttpLimits}: connections beyond the total or per-client
    cap (an IPv6 client counted by its /64) are closed at once (logged at
    most once a minute).

    L{close_connections} ends every open connection: the HTTP service calls
    it when it stops, once the port is closed, so the keepalived sidecar's
    watch (an idle connection) sees the daemon leave when shutdown starts,
    not when the process exits.
    """

    protocol = _Channel

    def __init__(self, resource, limits, reactor=None):
        # parsePOSTFormSubmission=False: form bodies are never parsed into
        # request.args (the API reads JSON only; query parameters come from
        # the URL alone; no multipart parsing on the reactor).
        super().__init__(resource, timeout=limits.idle, reactor=reactor,
                         parsePOSTFormSubmission=False)
        self.limits = limits
        self.open_connections = {}  # client address -> count
        self.large_paths = None  # paths that take bodies over DEFAULT_MAX_BODY (Site.site)
        self.large_bodies = 0  # requests holding one (SentinelRequest)
        self.channels = set()
        self._total = 0
        self._last_refusal_log = None

    def buildProtocol(self, addr):
        # An IPv6 client by its /64: one device can take any number of
        # addresses in it, and would otherwise hold every connection.
        client = client_key(getattr(addr, "host", None) or str(addr))
        if self._total >= self.limits.connections or \
                self.open_connections.get(client, 0) >= self.limits.per_client:
            self._refused(client)
            return None
        channel = super().buildProtocol(addr)
        channel.limits = self.limits
        channel.client = client
        self.open_connections[client] = self.open_connections.get(client, 0) + 1
        self._total += 1
        self.channels.add(channel)
        return channel

    def close_connections(self):
        for channel in list(self.channels):
            if channel.transport is not None:
                channel.transport.abortConnection()

    def connection_closed(self, client, channel=None):
        self.channels.discard(channel)
        self._total -= 1
        left = self.open_connections.get(client, 1) - 1
        if left > 0:
            self.open_connections[client] = left
        else:
            self.open_connections.pop(client, None)

    def _refused(self, client):
        now = self.reactor.seconds()
        if self._last_refusal_log is None or now - self._last_refusal_log >= 60:
            self._last_refusal_log = now
            log.warn("http: refusing connections from {client} (open: {mine} from it, "
                     "{total} in all; limits {per_client} per client, {limit} in all)",
                     client=client, mine=self.open_connections.get(client, 0),
                     total=self._total, per_client=self.limits.per_client,
                     limit=self.limits.connections)

    def log(self, request):
        if not getattr(request, "quiet_log", False):
            super().log(request)


class _Root(Resource):
    def __init__(self, fallback, hosts):
        super().__init__()
        self._fallback = fallback
        self._hosts = hosts

    def getChildWithDefault(self, name, request):
        try:
            host = request.getHeader("host")
        except ApiError as e:
            return _ErrorResource(e)
        if not self._hosts.allowed(host) and not self._hosts.exempt(request.path):
            return _MisdirectedResource(host)
        if name in self.children and not _utf8(request.prepath + request.postpath):
            # Klein would answer a plain-text 400 (and log a traceback).
            return _ErrorResource(ApiError(400, "BAD_REQUEST",
                                           "The path is not valid UTF-8 (after %-decoding)."))
        if name in self.children and not _routable_host(request):
            # Klein's router (werkzeug) would raise BadHost outside the
            # error handler: an HTML 500.  Reached on the sync paths (exempt
            # from the host policy) or with --http-hosts '*'.
            return _ErrorResource(ApiError(400, "BAD_HEADER",
                                           "The host header is not a valid host name."))
        return super().getChildWithDefault(name, request)

    def getChild(self, name, request):
        if self._fallback is not None:
            request.postpath.insert(0, request.prepath.pop())
            return self._fallback
        return _ErrorResource(NOT_FOUND)

    def render(self, request):
        return _ErrorResource(NOT_FOUND).render(request)


def _routable_host(request):
    """The Host name is one Klein's router accepts (IDNA-encodable)."""
    try:
        request.getRequestHostname().decode("utf-8").lower().encode("idna")
    except UnicodeError:
        return False
    return True


def _utf8(segments):
    try:
        for segment in segments:
            segment.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _ErrorResource(Resource):
    """An L{ApiError} found before routing, in the one error shape."""

    isLeaf = True

    def __init__(self, error):
        super().__init__()
        self._error = error

    def render(self, request):
        _security_headers(request)
        request.setResponseCode(self._error.status)
        request.setHeader(b"content-type", JSON_TYPE)
        return json_bytes(self._error.body())


class _MisdirectedResource(Resource):
    """421 for a Host header the policy refuses (DNS rebinding)."""

    isLeaf = True

    def __init__(self, host):
        super().__init__()
        self._host = host

    def render(self, request):
        _security_headers(request)
        request.setResponseCode(421)
        message = refusal(self._host)
        if request.path.startswith((b"/api/", b"/metrics")) or request.path in (b"/api",):
            request.setHeader(b"content-type", JSON_TYPE)
            return json_bytes({"error": "HOST_NOT_ALLOWED", "message": message})
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return message.encode("utf-8") + b"\n"


def _security_headers(request):
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    # API answers are data, never documents: if one is ever opened as a page
    # (a download, a sniffing browser), nothing in it runs and nothing frames it.
    request.setHeader(b"content-security-policy",
                      b"default-src 'none'; frame-ancestors 'none'; sandbox")
    request.setHeader(b"x-frame-options", b"DENY")
    # No page of another origin may even embed an answer (<script>, <img>):
    # the browser drops it before it reaches that page's process.
    request.setHeader(b"cross-origin-resource-policy", b"same-origin")


def _render(request, spec, result):
    if isinstance(result, Raw):
        request.setResponseCode(result.status)
        request.setHeader(b"content-type", result.content_type.encode())
        for k, v in result.headers.items():
            request.setHeader(k.encode() if isinstance(k, str) else k, v)
        return result.body
    status, headers, body = spec.status, {}, result
    if isinstance(result, Reply):
        status, headers, body = result.status, result.headers, result.body
    request.setResponseCode(status)
    for k, v in headers.items():
        request.setHeader(k.encode() if isinstance(k, str) else k, v)
    if status == 204 or body is None and status != 200:
        return b""
    request.setHeader(b"content-type", JSON_TYPE)
    if is_large(body):
        # A long listing (a follower's full sync, 50,000 rules): encoded a
        # member at a time in a thread, so the reactor (DNS) runs meanwhile.
        return deferToThread(encode_in_pieces, body)
    return json_bytes(body)


def _render_error(request, failure):
    """The one place errors become HTTP answers."""
    _security_headers(request)
    error = failure.value
    if isinstance(error, ApiError):
        pass
    elif isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or ()))
        error = ApiError(405, "METHOD_NOT_ALLOWED", "Method not allowed here.",
                         headers={"allow": allowed})
    elif isinstance(error, NotFound):
        error = ApiError(404, "NOT_FOUND", "No such API endpoint.")
    elif isinstance(error, HTTPException):
        error = ApiError(error.code or 400, "BAD_REQUEST", error.description or "Bad request.")
    elif isinstance(error, StoreTimeout):
        error = ApiError(
            503, "QUERY_TIMEOUT",
            "The database did not finish this within the 15 s a statement may take "
            "(PostgreSQL). Statistics and the query log over a long time window of a large "
            "query log can take that long: choose a shorter window (since/until). Otherwise "
            "another connection holds a lock: try again shortly.",
            headers={"retry-after": "5"})
    elif isinstance(error, StoreUnavailable):
        error = ApiError(503, "STORE_UNAVAILABLE",
                         "The database is not reachable right now; try again shortly.",
                         headers={"retry-after": "5"})
    else:
        log.failure("internal error answering {method} {uri}", failure,
                    method=request.method, uri=request.uri)
        error = ApiError(500, "INTERNAL_ERROR", "Internal error; see the server log.")
    request.setResponseCode(error.status)
    for k, v in error.headers.items():
        request.setHeader(k.encode(), str(v).encode())
    request.setHeader(b"content-type", JSON_TYPE)
    return json_bytes(error.body())
