"""
Checks the backup import applies to entities of other subsystems until
those register their own in ``w.entity_validators`` (which take
precedence): the filtering kinds through L{sentinel.filtering.model}, the
DNS settings through L{sentinel.dns.settings}, the UI settings through
their schema.  Each is ``validate(key, data)`` raising ValueError and
returning the data to store (None: as it is).
"""

from sentinel.api import settings as ui_settings
from sentinel.store.entities import encode
from sentinel.api.inputs import compile_schema

FILTERING_KINDS = ("client", "rule", "blocklist", "rewrite")


def _filtering(kind):
    from sentinel.filtering import model

    types = compile_schema({"type": "object", "properties": model.FIELDS[kind]})

    def validate(key, data):
        if not isinstance(data, dict):
            raise ValueError("must be an object")
        for error in types.iter_errors(data):
            field = ".".join(str(p) for p in error.absolute_path)
            raise ValueError(f"{field}: {error.message}")
        try:
            return model.check(kind, data)  # normalized, as the API stores it
        except model.Invalid as e:
            raise ValueError(f"{e.field}: {e.message}") from None
        except (TypeError, AttributeError, KeyError) as e:
            raise ValueError(f"malformed {kind} ({type(e).__name__})") from None

    return validate


PROTECTION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["paused"],
    "properties": {
        "paused": {"type": "boolean"},
        "until": {"type": ["number", "null"]},
    },
}


def _schema_check(schema):
    compiled = compile_schema(schema)

    def check(data):
        for error in compiled.iter_errors(data):
            field = ".".join(str(p) for p in error.absolute_path)
            raise ValueError(f"{field}: {error.message}" if field else error.message)

    return check


def _ui():
    schema = _schema_check(ui_settings.PREFS)

    def check(data):
        schema(data)
        if len(encode(data).encode()) > ui_settings.MAX_BODY:
            raise ValueError(f"larger than the {ui_settings.MAX_BODY // 1024} KiB the UI "
                             f"preferences may hold")

    return check


def _setting():
    from sentinel.dns.settings import from_data
    from sentinel.filtering.settings import FILTERING, FILTERING_SCHEMA, PROTECTION

    checks = {
        "dns": from_data,  # SettingsError is a ValueError
        "ui": _ui(),
        FILTERING: _schema_check(FILTERING_SCHEMA),
        PROTECTION: _schema_check(PROTECTION_SCHEMA),
    }

    def validate(key, data):
        check = checks.get(key)
        if check is None:
            raise ValueError(f"unknown setting {key!r} (from a newer Sentinel?)")
        check(data)

    return validate


def default_validators():
    validators = {"setting": _setting()}
    try:
        for kind in FILTERING_KINDS:
            validators[kind] = _filtering(kind)
    except ImportError:  # no filtering subsystem
        pass
    return validators
