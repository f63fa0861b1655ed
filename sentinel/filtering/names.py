"""
Domain names: validation, IDN to punycode, and the wire-format keys the
policy looks names up by.

A *key* is a name in lowercase DNS wire format WITHOUT the terminating zero
byte: ``ads.example.com`` is ``b"\\x03ads\\x07example\\x03com"``.  The DNS
server hands the policy ``qname`` with the terminating zero; dropping it
(``qname[:-1]``) and slicing at label boundaries gives the key of the name
and of every parent, which is all suffix matching needs.
"""

import re

import idna

MAX_NAME = 253
_ASCII_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")


class BadName(ValueError):
    """Not a usable domain name; the message says why."""


def normalize(text):
    """
    A user- or list-supplied domain -> lowercase ASCII without trailing dot.
    Internationalised names become punycode (``bücher.de`` ->
    ``xn--bcher-kva.de``).  Raises L{BadName}.
    """
    name = text.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise BadName("empty name")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as e:
            raise BadName(f"{text!r} is not a valid internationalised name ({e})") from None
    if len(name) > MAX_NAME or not _ASCII_NAME.fullmatch(name):
        raise BadName(
            f"{text!r} is not a valid domain name (letters, digits, '-' and '_' "
            f"in dot-separated labels of at most 63 characters)"
        )
    return name


def to_key(name):
    """A normalized name (str) -> its wire-format key (bytes)."""
    return b"".join(bytes((len(label),)) + label.encode("ascii") for label in name.split("."))


def key_of(text):
    """normalize + to_key."""
    return to_key(normalize(text))


def key_to_name(key):
    """A key back to a dotted name (for the API and logs)."""
    return wire_to_text(key + b"\x00")


def wire_to_text(wire):
    """
    A wire-format name (with or without its terminating zero) as dotted
    text, the way dig prints it: unusual bytes as ``\\DDD``, a literal dot
    or backslash inside a label escaped.  Never raises; "." for the root.
    """
    labels = []
    i, n = 0, len(wire)
    while i < n:
        length = wire[i]
        if length == 0:
            break
        label = wire[i + 1:i + 1 + length]
        i += 1 + length
        labels.append("".join(_char(b) for b in label))
    return ".".join(labels) if labels else "."


def _char(b):
    if b in (0x2E, 0x5C):  # '.' and '\' inside a label
        return "\\" + chr(b)
    if 0x21 <= b <= 0x7E:
        return chr(b)
    return "\\%03d" % b


def suffix_keys(key):
    """The key itself and the key of every parent, most specific first."""
    out = []
    i, n = 0, len(key)
    while i < n:
        out.append(key[i:])
        i += key[i] + 1
    return out
