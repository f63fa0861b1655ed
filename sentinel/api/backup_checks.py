"""
Checks the backup import applies to entities of other subsystems until
those register their own in ``w.entity_validators`` (which take
precedence): the filtering kinds through L{sentinel.filtering.model}, the
DNS settings through L{sentinel.dns.settings}, the UI settings through
their schema.  Each is ``validate(key, data)`` raising ValueError.
"""

from sentinel.api.settings import PREFS
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
            model.check(kind, data)
        except model.Invalid as e:
            raise ValueError(f"{e.field}: {e.message}") from None
        except (TypeError, AttributeError, KeyError) as e:
            raise ValueError(f"malformed {kind} ({type(e).__name__})") from None

    return validate


def _setting():
    ui = compile_schema(PREFS)

    def validate(key, data):
        if key == "dns":
            from sentinel.dns.settings import from_data

            from_data(data)  # SettingsError is a ValueError
        elif key == "ui":
            for error in ui.iter_errors(data):
                raise ValueError(error.message)

    return validate


def default_validators():
    validators = {"setting": _setting()}
    try:
        for kind in FILTERING_KINDS:
            validators[kind] = _filtering(kind)
    except ImportError:  # no filtering subsystem
        pass
    return validators
