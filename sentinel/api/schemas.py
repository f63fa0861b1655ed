"""
JSON-schema fragments shared by the API areas (request validation and the
OpenAPI document use the same schemas).
"""

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

ID = {"type": "integer", "minimum": 1, "maximum": 2**53}
ID_PARAM = {"type": "integer", "minimum": 1, "maximum": 2**53}
TIMESTAMP = {"type": "number", "description": "seconds since the Unix epoch"}
NAME = {"type": "string", "minLength": 1, "maxLength": 64}
USERNAME = {"type": "string", "minLength": 1, "maxLength": 64,
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
            "x-error": "must be 1 to 64 letters, digits and . _ @ -, "
                       "starting with a letter or digit"}
# writeOnly: a value that fails its schema is never quoted in the error
# (sentinel.api.inputs), as it is for other fields.
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024, "writeOnly": True}


def obj(properties, required=(), additional=False, **extra):
    """An object schema: ``obj({"a": {...}}, required=["a"])``."""
    schema = {"type": "object", "properties": dict(properties),
              "additionalProperties": additional}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def array_of(items, **extra):
    return dict({"type": "array", "items": items}, **extra)


def nullable(schema):
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}
