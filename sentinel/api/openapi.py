"""
GET /api/openapi.json: the OpenAPI 3.1 description of every endpoint in
the Site, generated from the same declarations (paths, auth, JSON schemas)
the Site routes and validates with, so it cannot drift from the code.
Areas added by any subsystem appear automatically.
"""

import re

from sentinel import __version__
from sentinel.api.base import endpoint
from sentinel.api.schemas import ERROR

SESSION_SCHEME = {
    "type": "apiKey", "in": "cookie", "name": "sentinel_session",
    "description": "Session cookie set by POST /api/auth/login (HttpOnly, SameSite=Strict).",
}
TOKEN_SCHEME = {
    "type": "http", "scheme": "bearer",
    "description": "API token from POST /api/auth/tokens: Authorization: Bearer snt_...",
}
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {"openapi": {"type": "string"}, "info": {"type": "object"},
                   "paths": {"type": "object"}},
}

_COMMON_ERRORS = {
    400: "Invalid request (see details)",
    401: "Not authenticated",
    403: "Refused (cross-site request, wrong password, ...)",
    404: "No such resource",
    409: "Conflict (duplicate, already configured, read-only follower)",
    413: "Request body too large",
    415: "Body is not application/json",
    429: "Too many attempts (see Retry-After)",
    503: "Database unavailable (see Retry-After)",
}


def operation_id(spec):
    slug = re.sub(r"[^A-Za-z0-9]+", "_", spec.path.replace("{", "").replace("}", ""))
    return f"{spec.method.lower()}{slug.rstrip('_')}"


def _error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _success(spec):
    if spec.status == 204:
        return {"description": "Done (no content)"}
    out = {"description": spec.summary or "Success"}
    if spec.content_type.startswith("application/json"):
        schema = spec.response if spec.response is not None else {}
    else:
        schema = {"type": "string"}
    out["content"] = {spec.content_type: {"schema": schema}}
    return out


def _errors(spec):
    statuses = set(spec.errors) | {503}
    if spec.auth != "none":
        statuses.add(401)
    if spec.mutating:
        statuses.add(403)
    if spec.body is not None or spec.query:
        statuses.add(400)
    if spec.body is not None:
        statuses |= {413, 415}
    if spec.path_params:
        statuses.add(404)
    return {str(s): _error(_COMMON_ERRORS.get(s, "Error"))
            for s in sorted(statuses) if s != spec.status}


def _parameters(spec):
    params = [{"name": n, "in": "path", "required": True, "schema": spec.param_schema(n)}
              for n in spec.path_params]
    for name, schema in sorted((spec.query or {}).items()):
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    return params


def _security(spec, schemes):
    if spec.auth == "none":
        return []
    if spec.auth == "admin":
        return [{"session": []}, {"token": []}]
    return [{name: []} for name in schemes.get(spec.auth, [spec.auth])]


def operation(spec, schemes):
    op = {
        "operationId": operation_id(spec),
        "summary": spec.summary or f"{spec.method} {spec.path}",
        "tags": [spec.tag],
        "security": _security(spec, schemes),
        "responses": dict({str(spec.status): _success(spec)}, **_errors(spec)),
    }
    params = _parameters(spec)
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": bool(spec.body.get("required")),
            "content": {"application/json": {"schema": spec.body}},
        }
    if spec.readonly_exempt and spec.mutating:
        op["x-readonly-exempt"] = True
    return op


def document(endpoints, authenticators=None):
    """The OpenAPI document (a dict) for [(spec, handler)]."""
    security_schemes = {"session": SESSION_SCHEME, "token": TOKEN_SCHEME}
    schemes = {}  # auth name -> [scheme names]
    for name, auth in sorted((authenticators or {}).items()):
        if name == "admin":
            continue
        described = getattr(auth, "openapi_scheme", None) or {
            "type": "http", "scheme": "bearer", "description": f"{name} credentials"}
        security_schemes[name] = described
        schemes[name] = [name]
    paths = {}
    for spec, _ in sorted(endpoints, key=lambda e: (e[0].path, e[0].method)):
        if spec.auth not in ("none", "admin") and spec.auth not in schemes:
            security_schemes.setdefault(spec.auth, {
                "type": "http", "scheme": "bearer", "description": f"{spec.auth} credentials"})
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation(spec, schemes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sentinel admin API",
            "version": __version__,
            "description": "Errors are JSON: {\"error\": CODE, \"message\": ...}. "
                           "See docs/API.md.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": security_schemes,
        },
    }


class OpenApiApi:
    """endpoints: callable() -> [(spec, handler)] (the Site's, once built)."""

    def __init__(self, endpoints, authenticators=None):
        self._endpoints = endpoints
        self._authenticators = authenticators
        self._cached = None

    @endpoint("GET", "/api/openapi.json", auth="none", tag="system",
              response=DOCUMENT_SCHEMA,
              summary="This API described as OpenAPI 3.1")
    async def openapi(self, call):
        if self._cached is None:
            self._cached = document(self._endpoints(), self._authenticators)
        return self._cached
