"""
JSON answers as bytes, and large ones built off the reactor thread.

``json.dumps`` encodes in C without letting go of the GIL: a 7 MB answer (a
backup of 50,000 rules) held every other thread -- and, on the reactor
thread, DNS -- for ~100 ms.  L{encode_in_pieces} gives the same bytes as
L{json_bytes}, encoding each member of a large object or array on its own,
so a thread doing it lets the reactor run between members; L{is_large}
tells the site which answers to send to such a thread.
"""

import json

PIECE_ITEMS = 64  # a container with more members than this is encoded member by member
LARGE_ITEMS = 2000  # members (counted three levels deep) of an answer encoded in a thread


def json_bytes(value):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in stored data: escape it
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _key(key):
    if isinstance(key, str):
        return json_bytes(key)
    return json_bytes({key: 0})[1:-3]  # as json.dumps names it: 1 -> "1", True -> "true"


def _pieces(value, out):
    if isinstance(value, dict) and len(value) > PIECE_ITEMS:
        out.append(b"{")
        for i, (key, member) in enumerate(value.items()):
            out.append(b"," + _key(key) + b":" if i else _key(key) + b":")
            _pieces(member, out)
        out.append(b"}")
    elif isinstance(value, (list, tuple)) and len(value) > PIECE_ITEMS:
        out.append(b"[")
        for i, member in enumerate(value):
            if i:
                out.append(b",")
            _pieces(member, out)
        out.append(b"]")
    else:
        out.append(json_bytes(value))


def encode_in_pieces(value):
    """json_bytes(value), encoded a member at a time (for a worker thread)."""
    out = []
    _pieces(value, out)
    return b"".join(out)


def is_large(value, depth=3):
    """Whether ``value`` has more than LARGE_ITEMS members within ``depth`` levels."""
    seen = 0
    level = [value]
    for _ in range(depth):
        below = []
        for v in level:
            if isinstance(v, dict):
                seen += len(v)
                below.extend(v.values())
            elif isinstance(v, (list, tuple)):
                seen += len(v)
                below.extend(v)
            if seen > LARGE_ITEMS:
                return True
        level = below
    return False
