"""
Reading a request's inputs for an endpoint: the JSON body (size limit,
media type, JSON, schema), query parameters and path parameters, each
checked against the endpoint's JSON schemas, compiled once per route
(L{CompiledRoute}).  Errors are L{ApiError}s with details per field.
"""

import math
import re

import jsonschema

from sentinel import strictjson
from sentinel.api.base import ApiError
from sentinel.strictjson import INT_LIMIT, StrictJsonError

MAX_REQUEST_BODY = 16 * 1024 * 1024  # hard cap for any request, any route
# Configuration is a few levels deep.  The cluster sync refuses entity data
# nested deeper than codec.MAX_DEPTH (200): a body well within it, whatever
# the route wraps it in, is stored and synced alike.
MAX_BODY_DEPTH = 100


def body_size(request):
    """Bytes of the request body received (before any limit is checked)."""
    content = request.content
    if content is None:
        return 0
    content.seek(0, 2)
    return content.tell()


def read_body(call, validator):
    request, spec = call.request, call.spec
    refused = getattr(request, "refused", None)
    if refused is not None:
        raise refused
    if getattr(request, "too_large", False):
        raise _too_large(getattr(request, "_limit", None) or MAX_REQUEST_BODY)
    request.content.seek(0)
    raw = request.content.read(spec.max_body + 1)
    if len(raw) > spec.max_body:
        raise _too_large(spec.max_body)
    call.raw_body = raw
    if spec.body is None:
        return
    ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    empty = not raw  # no body at all: as if {} was sent
    if not empty and ctype != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")
    try:
        body = strictjson.loads(raw, MAX_BODY_DEPTH, unique_keys=True) if not empty else {}
    except StrictJsonError as e:
        raise ApiError(400, "BAD_JSON", f"The body is not valid JSON: {e}.") from None
    call.body = check(validator, body)


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
             "message": _message(e)}
            for e in errors[:20]
        ]
        first = details[0]
        raise ApiError(
            400, "VALIDATION_ERROR", f"{first['field']}: {first['message']}", details
        )
    return value


def _message(error):
    # A schema may say in words what its pattern means ("x-error"): better
    # than echoing a long regular expression.
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-error")
    if isinstance(custom, str):
        return custom
    if schema.get("writeOnly"):
        return _without_value(error)
    return _short(error.message)


def _without_value(error):
    """
    The message for a write-only value (a password, a secret, a join code),
    which jsonschema's own messages would quote back: into the answer, onto
    the screen of the UI that shows it, and into any log of either.
    """
    limit = error.validator_value
    if error.validator == "minLength":
        return f"is too short (at least {limit} characters)"
    if error.validator == "maxLength":
        return f"is too long (at most {limit} characters)"
    if error.validator == "type":
        return f"must be of type {limit}"
    return f"is not valid ({error.validator})"


def _short(message, limit=300):
    # jsonschema quotes the offending value: keep error bodies small.
    return message if len(message) <= limit else message[:limit] + "..."


_INTEGER = re.compile(r"^[+-]?[0-9]{1,19}$")


def _coerce(schema, text):
    """Query/path text -> the schema's type where it clearly is one; text
    that is not (e.g. "12abc", "1_0", "inf", a 30-digit number) stays text
    and fails validation."""
    kinds = schema.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if "integer" in kinds and _INTEGER.match(text) and abs(int(text)) <= INT_LIMIT:
        return int(text)
    if "number" in kinds:
        try:
            value = float(text)
        except ValueError:
            return text
        if math.isfinite(value) and "_" not in text:
            return int(value) if _INTEGER.match(text) else value
        return text
    if "boolean" in kinds:
        from sentinel.options import parse_bool

        try:
            return parse_bool(text)
        except ValueError:
            return text
    return text


def read_query(call, validator):
    declared = call.spec.query or {}
    query = {}
    for raw_name, values in call.request.args.items():
        name = raw_name.decode("utf-8", "replace")
        if name in declared and values:
            text = values[-1].decode("utf-8", "replace")
            if "\x00" in text:
                # No filter means it, and PostgreSQL refuses it in any
                # parameter (a 500 from the store).
                raise ApiError(400, "VALIDATION_ERROR", f"{name}: contains a NUL character",
                               [{"field": name, "message": "contains a NUL character"}])
            query[name] = _coerce(declared[name], text)
    if validator is not None:
        check(validator, query, where="query")
    call.query = query


def read_params(spec, validators, params):
    """Coerce and check path parameters; a value that cannot exist is 404."""
    out = {}
    for name, text in params.items():
        value = _coerce(spec.param_schema(name), text)
        if "\x00" in text or not validators[name].is_valid(value):
            raise ApiError(404, "NOT_FOUND", f"No such {name}: {text[:100]!r}.")
        out[name] = value
    return out


class CompiledRoute:
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
