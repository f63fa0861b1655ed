"""
The pieces every API area uses: L{ApiError}, the L{endpoint} decorator that
declares a route (path, method, auth, request/response schemas), the
L{Call} object handlers receive, and L{Reply} for non-200 answers.

An area is a plain class whose constructor takes its dependencies and whose
methods are decorated with L{endpoint}::

    class RulesApi:
        def __init__(self, store):
            self._store = store

        @endpoint("POST", "/api/rules", body=RULE_SCHEMA, status=201,
                  summary="Create a rule", tag="rules")
        async def create(self, call):
            ...
            return Reply(201, rule_json)

L{sentinel.api.site} collects the endpoints of all areas into one Klein
app per mount point, runs admission (origin, authentication, read-only
guard), parses and validates bodies, and translates every error in one
place.
"""

import re

import attr

SAFE_METHODS = frozenset([b"GET", b"HEAD", b"OPTIONS"])
DEFAULT_MAX_BODY = 64 * 1024


class ApiError(Exception):
    """An error the client should see: status, machine code, message."""

    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self):
        out = {"error": self.code, "message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


def not_found(what="resource"):
    return ApiError(404, "NOT_FOUND", f"No such {what}.")


def validation_error(message, field=None):
    details = [{"field": field, "message": message}] if field else None
    return ApiError(400, "VALIDATION_ERROR", message, details)


@attr.s(frozen=True, auto_attribs=True)
class Reply:
    """A JSON answer with a status other than 200 (or extra headers)."""

    status: int
    body: object = None
    headers: dict = attr.Factory(dict)


@attr.s(frozen=True, auto_attribs=True)
class Raw:
    """A non-JSON answer (e.g. Prometheus text, a download)."""

    body: bytes
    content_type: str
    status: int = 200
    headers: dict = attr.Factory(dict)


@attr.s(auto_attribs=True)
class Principal:
    """Who made the request."""

    username: str
    method: str  # "session", "token" or "cluster"
    session_id: str = None  # key of the session entity (method "session")
    token_id: int = None  # id of the API token (method "token")
    expires_at: float = None  # when the session ends (method "session")


@attr.s(auto_attribs=True)
class Call:
    """What a handler gets: the twisted request plus parsed inputs."""

    request: object
    spec: "EndpointSpec"
    principal: Principal = None
    body: object = None
    query: dict = attr.Factory(dict)
    raw_body: bytes = b""

    def header(self, name, default=None):
        """A request header as str (name as str or bytes)."""
        if isinstance(name, bytes):
            name = name.decode("ascii")
        value = self.request.getHeader(name)
        return default if value is None else value


@attr.s(frozen=True, auto_attribs=True)
class EndpointSpec:
    method: str
    path: str  # OpenAPI style: /api/rules/{rule_id}
    auth: str  # "admin" or "none"
    summary: str
    tag: str
    body: dict = None  # JSON schema of the request body
    query: dict = None  # name -> JSON schema of query parameters
    response: dict = None  # JSON schema of the success body
    status: int = 200
    errors: tuple = ()  # other statuses it may answer (for OpenAPI)
    max_body: int = DEFAULT_MAX_BODY
    readonly_exempt: bool = False  # allowed on a follower
    content_type: str = "application/json"
    mount: str = "api"
    params: dict = None  # name -> JSON schema of path parameters

    @property
    def path_params(self):
        """Names of the path parameters, in order."""
        return re.findall(r"\{(\w+)\}", self.path)

    def param_schema(self, name):
        return (self.params or {}).get(name, {"type": "string"})

    @property
    def mutating(self):
        return self.method.encode() not in SAFE_METHODS

    @property
    def klein_path(self):
        """/api/rules/{rule_id} -> /rules/<rule_id> relative to the mount."""
        rel = self.path[len("/" + self.mount):] if self.mount else self.path
        return re.sub(r"\{(\w+)\}", r"<\1>", rel) or "/"


def endpoint(method, path, *, auth="admin", summary="", tag="", body=None,
             query=None, response=None, status=200, errors=(),
             max_body=DEFAULT_MAX_BODY, readonly_exempt=False,
             content_type="application/json", params=None):
    """
    Declare a handler method as an API endpoint (see module docstring).

    body/query/response/params are JSON schemas (draft 2020-12), used both
    to validate and to describe the endpoint in /api/openapi.json.
    ``params`` maps path parameter names to schemas (default: string); a
    value that does not match answers 404, and integer/number/boolean
    values reach the handler converted.  ``auth`` is "admin", "none" or the
    name of another authenticator in the gate.  ``content_type`` is the
    type of the success answer (for L{Raw} answers, e.g. text/plain).
    """
    mount = path.strip("/").split("/")[0]
    spec = EndpointSpec(
        method.upper(), path, auth, summary, tag or mount, body, query, response,
        status, tuple(errors), max_body, readonly_exempt, content_type, mount,
        dict(params) if params else None,
    )
    unknown = set(spec.params or ()) - set(spec.path_params)
    if unknown:
        raise ValueError(f"{path}: params {sorted(unknown)} are not in the path")

    def decorate(fn):
        fn.__sentinel_endpoint__ = spec
        return fn

    return decorate


def endpoints_of(area):
    """[(spec, bound handler)] declared on an area instance."""
    found = []
    for name in dir(type(area)):
        fn = getattr(type(area), name, None)
        spec = getattr(fn, "__sentinel_endpoint__", None)
        if spec is not None:
            found.append((spec, getattr(area, name)))
    return found
