"""
Strict JSON for what Sentinel reads from outside: admin API bodies
(L{sentinel.api.inputs}) and cluster sync payloads
(L{sentinel.cluster.codec}).  One reader for both, so that whatever the
API stores, a follower's sync accepts.

Beyond ``json.loads``: UTF-8 only; no NaN/Infinity, and no number beyond a
double (``1e999`` would be read as infinity and later written as
``Infinity``, which no JSON parser accepts); integers within 64 bits (a
BIGINT); no lone surrogate (``"\\ud800"`` is valid JSON but no text: it
cannot be stored or sent as UTF-8); nesting within ``max_depth`` levels
and never past Python's recursion limit.
"""

import json
import math
import re

INT_LIMIT = 2**63 - 1
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class StrictJsonError(ValueError):
    """Why the bytes are not taken (a short message, no input echoed at length)."""


def loads(raw, max_depth=None, unique_keys=False):
    """The value of ``raw`` (bytes); raises StrictJsonError.  unique_keys:
    refuse an object naming a key twice (json.loads keeps the last: in a
    hand-edited file, the other is silently lost)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_int=_int,
                           parse_float=_float,
                           object_pairs_hook=_unique_object if unique_keys else None)
    except UnicodeDecodeError as e:
        raise StrictJsonError(f"not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise StrictJsonError(str(e)[:120]) from None
    except RecursionError:
        raise StrictJsonError("nested too deeply") from None
    if _MAYBE_SURROGATE.search(raw) and not _encodable(value):
        raise StrictJsonError("a lone surrogate (\\ud800-\\udfff)")
    if max_depth is not None and depth(value) > max_depth:
        raise StrictJsonError(f"nested deeper than {max_depth} levels")
    return value


def depth(value):
    """Levels of lists and objects in ``value`` (0 for a plain value), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > deepest:
                deepest = level
            items = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in items
                         if isinstance(child, (dict, list)))
    return deepest


def _encodable(value):
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
    except RecursionError:
        return False


def _int(text):
    value = int(text)
    if abs(value) > INT_LIMIT:
        raise ValueError(f"{text[:30]} is out of range (64-bit integers only)")
    return value


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is out of range (finite numbers only)")
    return value


def _unique_object(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the key {twice[:40]!r} appears twice in one object")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")
