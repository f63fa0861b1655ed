"""
Blocklist parsing and the stored (normalized, compressed) list format.

Accepted, line by line and mixed freely in one file:

- hosts files: ``0.0.0.0 ads.example.com [more names]`` (any address;
  ``localhost`` and friends are ignored);
- plain domain lists: ``ads.example.com`` (a leading ``*.`` is dropped);
- Adblock-style: ``||ads.example.com^`` (optionally ``$important``, which
  adds nothing here) blocks, ``@@||ads.example.com^`` is an exception
  (allow); ``$badfilter`` takes back the list's own rule for that name;
- comments: lines starting with ``#`` or ``!``, ``[Adblock ...]`` headers,
  and trailing `` # comment`` text (whatever it holds).

Everything else (cosmetic ``##`` rules, URL/path rules, regexes, rules
with modifiers a DNS server cannot honour, invalid or single-label names,
IP addresses) is skipped and counted; a hosts line's valid names are kept
when one of its names is not.  Every entry blocks the name and its
subdomains.

The stored form is a blob: ``SBL1``, two 4-byte counts, then the zlib-
compressed, sorted wire-format keys (see L{sentinel.filtering.names}) of
blocked and allowed names separated by zero bytes.  Loading it needs no
per-name text processing, which keeps a 1M-domain build fast.
"""

import re
import struct
import zlib

import attr

from sentinel.filtering.names import BadName, normalize, to_key

MAGIC = b"SBL1"
_HEADER = struct.Struct("!4sII")
MAX_EXAMPLES = 5

_HOSTS_IGNORED = frozenset([
    "localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost",
    "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
    "ip6-allhosts", "0.0.0.0",
])
_ADBLOCK = re.compile(r"(@@)?\|\|([^\^/$|*]+)\^(?:\|)?(?:\$(.*))?")
# Every pattern here runs in time linear in the line (a list may hold a
# line of megabytes): no two ways to split the same text.  An IPv4 or IPv6
# address (the first ":" ends the hex part: "[0-9a-fA-F:]*:" matched the
# same texts, in time quadratic in a run of colons).
_ADDRESS = re.compile(r"[0-9.]+|[0-9a-fA-F]*:[0-9a-fA-F:.%a-zA-Z]*")
_SUPPORTED_MODIFIERS = frozenset(["important"])
# A trailing comment: "0.0.0.0 a.example # ads | tracking".  Matched only
# from the start of a run of white space ("\s+#" was tried from each
# space of the run: quadratic in its length).
_COMMENT = re.compile(r"(?<!\s)\s+#")
LINES_PIECE = 1 << 18  # characters split into lines at a time (see _lines)


class ListFormatError(ValueError):
    """A stored list blob that cannot be read."""


@attr.s(frozen=True, slots=True)
class ParsedList:
    blocked = attr.ib()  # sorted list of keys (bytes)
    allowed = attr.ib()  # sorted list of keys (bytes)
    skipped = attr.ib()  # number of lines that were not understood
    examples = attr.ib()  # a few skipped lines, for the status display


def text_of(body):
    """
    Downloaded bytes -> text: UTF-8, a BOM dropped.  Bytes that are not
    UTF-8 become U+FFFD, so only the lines holding them are skipped (read
    as Latin-1, one stray byte turned every internationalised name of the
    list into a different, valid-looking one).
    """
    return body.decode("utf-8", "replace").lstrip("\ufeff")


_MARKUP_START = re.compile(rb"\s*<[!?/a-zA-Z]")


def looks_like_html(body):
    """
    True if downloaded bytes start like an HTML (or XML) page, not a list:
    an error page, a captive portal, a parked domain's page.  No list
    format starts with a tag (``<!DOCTYPE``, ``<html>``, ``<h1>``, ``<?xml``).
    """
    return _MARKUP_START.match(body[:4096].lstrip(b"\xef\xbb\xbf")) is not None


def parse(text):
    """Parse blocklist text (str) into a L{ParsedList}."""
    blocked, allowed = set(), set()
    skipped = 0
    examples = []

    def skip(line):
        nonlocal skipped
        skipped += 1
        if len(examples) < MAX_EXAMPLES:
            examples.append(line[:200])

    bad_blocks, bad_allows = set(), set()
    for raw in _lines(text):
        line = raw.strip()
        if "#" in line:
            line = _COMMENT.split(line, 1)[0]
        if not line or line[0] in "#!" or (line[0] == "[" and line[-1] == "]"):
            continue
        if "|" in line or "^" in line or "$" in line or "##" in line or "#@#" in line \
                or "#?#" in line or "#$#" in line:
            _adblock(line, blocked, allowed, (bad_blocks, bad_allows), skip)
            continue
        hash_at = line.find("#")
        if hash_at >= 0:
            line = line[:hash_at].rstrip()
        fields = line.split()
        if len(fields) > 1 and _ADDRESS.fullmatch(fields[0]):
            names = fields[1:]  # hosts line
        elif len(fields) == 1:
            names = fields
            if names[0].startswith("*."):
                names = [names[0][2:]]
        else:
            skip(raw.strip())
            continue
        bad = False
        for name in names:
            if name.lower() in _HOSTS_IGNORED:
                continue
            key = _key(name)
            if key is None:
                bad = True  # the line's other names still count
            else:
                blocked.add(key)
        if bad:
            skip(raw.strip())
    blocked -= bad_blocks
    allowed -= bad_allows
    return ParsedList(sorted(blocked), sorted(allowed), skipped, tuple(examples))


def _lines(text, piece=LINES_PIECE):
    """
    The lines of ``text`` (as ``str.splitlines``), a piece of about
    ``piece`` characters (cut after a newline) at a time: the list of every
    line of a 64 MB list of short lines (comments) took ~1.6 GB at once.
    """
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start + piece)
        end = n if end < 0 else end + 1
        yield from text[start:end].splitlines()
        start = end


def _adblock(line, blocked, allowed, disabled, skip):
    m = _ADBLOCK.fullmatch(line)
    if m is None:
        skip(line)
        return
    exception, name, modifiers = m.groups()
    target = allowed if exception else blocked
    if modifiers:
        names = {part.strip().lower() for part in modifiers.split(",")}
        if "badfilter" in names:  # this list takes back its own rule for the name
            names.discard("badfilter")
            target = disabled[1 if exception else 0]
        if not names <= _SUPPORTED_MODIFIERS:
            skip(line)
            return
    key = _key(name)
    if key is None:
        skip(line)
        return
    target.add(key)


def _key(name):
    try:
        name = normalize(name)
    except BadName:
        return None
    if "." not in name:
        return None  # a single label (a TLD) in a list is almost always a mistake
    if name.rsplit(".", 1)[1].isdigit():
        return None  # an IP address (no top-level domain is numeric)
    return to_key(name)


# -- the stored form ---------------------------------------------------------


def encode(parsed):
    """A L{ParsedList} -> blob bytes (deterministic: equal lists, equal bytes)."""
    body = b"\x00".join(list(parsed.blocked) + list(parsed.allowed))
    return _HEADER.pack(MAGIC, len(parsed.blocked), len(parsed.allowed)) + zlib.compress(body, 6)


# Decoding works in steps of at most DECODE_CHUNK compressed and DECODE_PIECE
# decompressed bytes (~10,000 names of ~25 characters), so that no step
# that holds the GIL (splitting a piece into names, freeing them) takes
# more than about a millisecond; the policy engine decodes in a thread
# while DNS is served.  Steps of 1 MiB compressed (~4 MB, ~200,000 names)
# held the GIL for up to 20-25 ms each, and slicing the 2M-name result
# into blocked and allowed names as long again.
DECODE_CHUNK = 1 << 16
DECODE_PIECE = 1 << 18
_LONGEST = 1024  # a stored key has at most 254 bytes


def decode(blob, convert=None, chunk=DECODE_CHUNK, pieces=False):
    """
    Blob bytes -> (blocked, allowed) lists of keys, or of ``convert(key)``;
    with ``pieces``, each is a list of lists (pieces of at most one step's
    names) instead: nothing then builds or copies a list of all the names.
    Decompresses piecewise so that with a converter (e.g. a hash) only one
    piece's worth of key objects exists at a time.
    """
    if len(blob) < _HEADER.size:
        raise ListFormatError("blocklist blob is truncated")
    magic, n_blocked, n_allowed = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ListFormatError("not a Sentinel blocklist blob")
    blocked, allowed = [], []
    count = 0

    def emit(names):
        nonlocal count
        if convert is not None:
            names = list(map(convert, names))
        split = min(max(n_blocked - count, 0), len(names))
        count += len(names)
        head, tail = (names, []) if split == len(names) else (names[:split], names[split:])
        for out, part in ((blocked, head), (allowed, tail)):
            if part:
                if pieces:
                    out.append(part)
                else:
                    out.extend(part)

    inflater = zlib.decompressobj()
    view = memoryview(blob)[_HEADER.size:]
    rest = b""
    try:
        for start in range(0, len(view), chunk):
            data = view[start:start + chunk]
            while True:
                text = inflater.decompress(data, DECODE_PIECE)
                data = inflater.unconsumed_tail
                if text:
                    *names, rest = (rest + text).split(b"\x00")
                    if names:
                        emit(names)
                    elif len(rest) > _LONGEST:
                        raise ListFormatError("blocklist blob is corrupt (a name is too long)")
                if not data and len(text) < DECODE_PIECE:
                    break
        rest += inflater.flush()
    except zlib.error as e:
        raise ListFormatError(f"blocklist blob is corrupt ({e})") from None
    if not inflater.eof:
        raise ListFormatError("blocklist blob is truncated")
    if rest or count:
        emit(rest.split(b"\x00"))
    if count != n_blocked + n_allowed:
        raise ListFormatError("blocklist blob counts do not match its contents")
    return blocked, allowed
