"""
Composition of the HTTP side: every area's endpoints go into one Klein app
per mount point (``/api``, ``/metrics``), behind one admission gate and one
error handler; anything else is served by the web UI resource.
"""

import json
import re

import jsonschema
from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from sentinel.api.base import ApiError, Call, Raw, Reply, endpoints_of
from sentinel.store.database import StoreUnavailable

log = Logger()

MAX_REQUEST_BODY = 16 * 1024 * 1024  # hard cap for any request, any route
JSON_TYPE = b"application/json; charset=utf-8"


class SentinelRequest(server.Request):
    """A request that stops buffering a body larger than MAX_REQUEST_BODY."""

    too_large = False
    _received = 0

    def gotLength(self, length):
        if length is not None and length > MAX_REQUEST_BODY:
            self.too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if self._received > MAX_REQUEST_BODY:
            self.too_large = True
        if not self.too_large:
            super().handleContentChunk(data)


def json_bytes(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Gate:
    """
    Admission, in this order: cross-site check, authentication (by the
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
    Refuse a state-changing request that a browser sent from another site
    (CSRF): ``Sec-Fetch-Site: cross-site`` is refused, and the Origin
    header, when present, must name this host (scheme://Host).  Requests
    authenticating with a bearer token pass: a browser cannot add that
    header cross-site without a CORS preflight, which this server never
    grants, and the admin authenticator then ignores the cookie.  Other
    Authorization schemes (e.g. Basic from a reverse proxy, which browsers
    resend on their own) do not exempt a request.
    """
    authorization = request.getHeader("authorization") or ""
    if authorization.strip().lower().startswith("bearer "):
        return
    origin = request.getHeader("origin")
    fetch_site = request.getHeader("sec-fetch-site")
    if fetch_site == "cross-site":
        raise _cross_site()
    if origin is None:
        return
    host = request.getHeader("host") or ""
    scheme, _, rest = origin.partition("://")
    if origin == "null" or scheme.lower() not in ("http", "https") \
            or rest.rstrip("/").lower() != host.lower():
        raise _cross_site()


def _cross_site():
    return ApiError(403, "CROSS_SITE_REQUEST", "Cross-site requests are not allowed.")


def _read_body(call, validator):
    request, spec = call.request, call.spec
    if getattr(request, "too_large", False):
        raise _too_large(MAX_REQUEST_BODY)
    request.content.seek(0)
    raw = request.content.read(spec.max_body + 1)
    if len(raw) > spec.max_body:
        raise _too_large(spec.max_body)
    call.raw_body = raw
    if spec.body is None:
        return
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if raw.strip() and ctype != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant) \
            if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "BAD_JSON", f"The body is not valid JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "BAD_JSON", "The body is nested too deeply.") from None
    if _MAYBE_SURROGATE.search(raw) and not _encodable(body):
        # "\ud800" alone is valid JSON but no valid text: it could not be
        # stored or sent on as UTF-8.
        raise ApiError(400, "BAD_JSON", "The body contains a lone surrogate (\\ud800-\\udfff).")
    call.body = check(validator, body)


_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _encodable(value):
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _too_large(limit):
    return ApiError(413, "BODY_TOO_LARGE", f"The request body is larger than {limit} bytes.")


def compile_schema(schema):
    """A reusable validator for a JSON schema (formats are checked)."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(schema, value, where=""):
    """Validate against a JSON schema; 400 VALIDATION_ERROR with details."""
    return check(compile_schema(schema), value, where)


def check(validator, value, where=""):
    """Validate with a compiled validator; 400 VALIDATION_ERROR with details."""
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except RecursionError:
        raise ApiError(400, "VALIDATION_ERROR", f"{where or '(body)'}: nested too deeply") \
            from None
    if errors:
        details = [
            {"field": ".".join(str(p) for p in e.absolute_path) or where or "(body)",
             "message": _short(e.message)}
            for e in errors[:20]
        ]
        first = details[0]
        raise ApiError(
            400, "VALIDATION_ERROR", f"{first['field']}: {first['message']}", details
        )
    return value


def _short(message, limit=300):
    # jsonschema quotes the offending value: keep error bodies small.
    return message if len(message) <= limit else message[:limit] + "..."


def _coerce(schema, text):
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
        if kind == "boolean":
            from sentinel.options import parse_bool

            return parse_bool(text)
    except ValueError:
        pass  # left as text; validation reports it
    return text


def _read_query(call, validator):
    declared = call.spec.query or {}
    query = {}
    for raw_name, values in call.request.args.items():
        name = raw_name.decode("utf-8", "replace")
        if name in declared and values:
            text = values[-1].decode("utf-8", "replace")
            query[name] = _coerce(declared[name], text)
    if validator is not None:
        check(validator, query, where="query")
    call.query = query


def _read_params(spec, validators, params):
    """Coerce and check path parameters; a value that cannot exist is 404."""
    out = {}
    for name, text in params.items():
        value = _coerce(spec.param_schema(name), text)
        if not validators[name].is_valid(value):
            raise ApiError(404, "NOT_FOUND", f"No such {name}: {text[:100]!r}.")
        out[name] = value
    return out


class _Route:
    """One endpoint with its validators compiled once."""

    def __init__(self, spec, handler):
        self.spec, self.handler = spec, handler
        self.body = compile_schema(spec.body) if spec.body is not None else None
        self.query = None
        if spec.query:
            self.query = compile_schema({"type": "object", "properties": spec.query})
        self.params = {n: compile_schema(spec.param_schema(n)) for n in spec.path_params}
        if spec.response is not None:
            compile_schema(spec.response)  # a broken schema fails at start-up


class Site:
    """Builds the root resource from areas, a gate and the UI resource."""

    def __init__(self, areas, gate, fallback=None):
        self.gate = gate
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
        compiled = _Route(spec, handler)

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
        _read_body(call, route.body)
        _read_query(call, route.query)
        params = _read_params(spec, route.params, params)
        result = await route.handler(call, **params)
        return _render(request, spec, result)

    def resource(self):
        root = _Root(self.fallback)
        for mount, app in self.apps.items():
            root.putChild(mount.encode(), app.resource())
        return root

    def site(self, reactor=None):
        factory = _QuietableSite(self.resource())
        factory.requestFactory = SentinelRequest
        factory.displayTracebacks = False
        return factory


class _QuietableSite(server.Site):
    """
    Skips the access-log line of requests a handler marked
    ``request.quiet_log = True``: keepalived's readiness check every
    second and followers' sync polls would otherwise flood the log.
    """

    def log(self, request):
        if not getattr(request, "quiet_log", False):
            super().log(request)


class _Root(Resource):
    def __init__(self, fallback):
        super().__init__()
        self._fallback = fallback

    def getChild(self, name, request):
        if self._fallback is not None:
            request.postpath.insert(0, request.prepath.pop())
            return self._fallback
        return _NotFoundResource()

    def render(self, request):
        return _NotFoundResource().render(request)


class _NotFoundResource(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"content-type", JSON_TYPE)
        return json_bytes({"error": "NOT_FOUND", "message": "No such page."})


def _security_headers(request):
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")


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
