"""
The last-known-good (LKG) policy file, ``<data-dir>/policy.lkg`` (0600):
what this node needs to rebuild the filtering policy it last enforced
without its store, so that a database that cannot be opened at start does
not turn filtering off (docs/STORAGE.md, "A database that cannot be
opened").

It holds the filtering configuration (clients, rules, blocklists,
rewrites, the filtering/protection/DNS settings, as the engine mirrors
them) and the stored contents of every blocklist that is not disabled.
Those contents are kept nowhere else outside the database (the engine's
list cache is memory only), and their stored form (``SBL1``: sorted,
zlib-compressed wire-format names, sentinel/filtering/listformat.py) is
both the smallest form and the one the engine already decodes; the
policy's 60-bit name hashes cannot be saved instead, since Python
randomises ``hash()`` per process.

Format (version 1), all integers big-endian::

    magic "SNTLLKG\\n", version u16, saved_at f64 (Unix time),
    config length u32, blob count u32,
    config (UTF-8 JSON),
    per blob: sha256 (32 bytes), length u32, the blob,
    sha256 of everything before it (32 bytes).

The file is bad input like anything on disk: whatever is wrong with it
raises L{LastGoodError} with one line; the caller falls back to
pass-through.  The format functions are pure; L{read_file} and
L{LastGoodWriter} are the edges.
"""

import hashlib
import json
import struct
import time

import attr
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from sentinel.filtering import compiler
from sentinel.safefile import UnreadableFile, atomic_write, read_limited
from sentinel.store import StoreUnavailable

log = Logger()

MAGIC = b"SNTLLKG\n"
VERSION = 1
_HEADER = struct.Struct("!8sHdII")
_BLOB = struct.Struct("!32sI")
_DIGEST = 32
# Larger than any real policy (a 1M-name list is ~5 MB here); a bigger
# file is refused before it is read, so it cannot exhaust memory.
MAX_FILE = 256 * 1024 * 1024
DEBOUNCE = 2.0  # a burst of changes (an import, a sync) writes once
RETRY = 60.0


class LastGoodError(ValueError):
    """The file exists but cannot be used; the message says why (one line)."""


@attr.s(frozen=True, slots=True)
class LastGood:
    saved_at = attr.ib()  # Unix time it was written
    config = attr.ib()  # compiler.FilterConfig
    blobs = attr.ib()  # {sha256 hex: blob bytes}


# -- the format (pure) ----------------------------------------------------------


def config_doc(config):
    """A FilterConfig -> the JSON-able document saved in the file."""
    return {
        "revision": config.revision,
        "entities": {kind: {str(k): v for k, v in table.items()}
                     for kind, table in config.entities.items()},
        "settings": dict(config.settings),
    }


def config_of(doc):
    """The saved document -> a FilterConfig; LastGoodError if it is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("entities"), dict) \
            or not isinstance(doc.get("settings"), dict):
        raise LastGoodError("its configuration is not the expected document")
    config = compiler.FilterConfig()
    revision = doc.get("revision")
    config.revision = revision if isinstance(revision, int) and revision >= 0 else 0
    for kind, table in doc["entities"].items():
        if kind not in config.entities or not isinstance(table, dict):
            raise LastGoodError(f"its configuration has an unknown kind {kind!r}")
        for key, data in table.items():
            if not key.isdigit():
                raise LastGoodError(f"its configuration has a bad {kind} id {key!r}")
            config.entities[kind][int(key)] = data  # checked when compiled
    for key, data in doc["settings"].items():
        if key in compiler.SETTING_KEYS:
            config.settings[key] = data
    return config


def encode(doc, blobs, saved_at):
    """(config document, {sha hex: blob}, time) -> the file's bytes."""
    config = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    parts = [_HEADER.pack(MAGIC, VERSION, saved_at, len(config), len(blobs)), config]
    for sha, blob in sorted(blobs.items()):
        parts += [_BLOB.pack(bytes.fromhex(sha), len(blob)), blob]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    parts.append(digest.digest())
    return b"".join(parts)


def decode(data):
    """The file's bytes -> L{LastGood}; raises L{LastGoodError}."""
    view = memoryview(data)
    if len(view) < len(MAGIC) or bytes(view[:len(MAGIC)]) != MAGIC:
        if bytes(view[:len(MAGIC)]) == MAGIC[:len(view)]:
            raise LastGoodError(f"it is truncated ({len(view)} bytes)")
        raise LastGoodError("it is not a Sentinel last-known-good policy file")
    if len(view) < _HEADER.size + _DIGEST:
        raise LastGoodError(f"it is truncated ({len(view)} bytes)")
    _, version, saved_at, config_len, count = _HEADER.unpack_from(view)
    if version > VERSION:
        raise LastGoodError(f"it was written by a newer Sentinel (format version {version}; "
                            f"this one reads version {VERSION})")
    if version != VERSION:
        raise LastGoodError(f"it has an unknown format version {version}")
    body = view[:-_DIGEST]
    if hashlib.sha256(body).digest() != bytes(view[-_DIGEST:]):
        raise LastGoodError("it is damaged or truncated (its checksum does not match)")
    # The checksum matched: what follows can only fail for a file this
    # code did not write.
    at = _HEADER.size + config_len
    if at > len(body):
        raise LastGoodError("its configuration is cut short")
    try:
        config = config_of(json.loads(bytes(body[_HEADER.size:at]).decode("utf-8")))
    except (UnicodeDecodeError, ValueError) as e:
        if isinstance(e, LastGoodError):
            raise
        raise LastGoodError(f"its configuration is not valid JSON ({e})") from None
    blobs = {}
    for _ in range(count):
        if at + _BLOB.size > len(body):
            raise LastGoodError("its blocklist contents are cut short")
        sha, size = _BLOB.unpack_from(body, at)
        at += _BLOB.size
        if at + size > len(body):
            raise LastGoodError("its blocklist contents are cut short")
        blobs[sha.hex()] = bytes(body[at:at + size])
        at += size
    if at != len(body):
        raise LastGoodError(f"it has {len(body) - at} unexpected bytes at its end")
    return LastGood(saved_at, config, blobs)


def describe_time(saved_at, now):
    """'2026-11-28 00:12:03 UTC, 3 h 2 min ago' (for the log and /api/health)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(saved_at))
    age = max(0, int(now - saved_at))
    days, rest = divmod(age, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        ago = f"{days} d {hours} h"
    elif hours:
        ago = f"{hours} h {minutes} min"
    elif minutes:
        ago = f"{minutes} min {seconds} s"
    else:
        ago = f"{seconds} s"
    return f"{when}, {ago} ago"


# -- the file (I/O; run off the reactor thread) -----------------------------------


def read_file(path):
    """The L{LastGood} in ``path``, None if there is none; LastGoodError (the
    message names the file).  Never blocks on a FIFO, never reads a file
    larger than MAX_FILE."""
    try:
        data = read_limited(path, MAX_FILE)
    except UnreadableFile as e:
        raise LastGoodError(f"{path}: {e}") from None
    if data is None:
        return None
    try:
        return decode(data)
    except LastGoodError as e:
        raise LastGoodError(f"{path} cannot be used: {e}") from None


def write_file(path, doc, blobs, saved_at):
    """Write the file atomically (temporary file, fsync, rename), 0600."""
    atomic_write(path, encode(doc, blobs, saved_at), 0o600)


class LastGoodWriter:
    """
    Saves the policy in force, debounced: ``changed(describe)`` after every
    new policy; DEBOUNCE seconds after the last one, ``describe()`` ->
    (config document, blocklist shas) is taken, the contents are read
    from the store and the file is written in a thread.  Nothing is
    written when the document and lists equal what was last written.  A
    failure is logged once per distinct reason and tried again RETRY
    seconds later.
    """

    def __init__(self, path, clock, get_blob, run):
        self.path = path
        self._clock = clock
        self._get_blob = get_blob  # sha -> Deferred(bytes or None)
        self._run = run  # (fn, *args) -> Deferred, off the reactor thread
        self._describe = None
        self._timer = None
        self._writing = None  # the write in progress (a Deferred)
        self._again = False
        self._stopped = False
        self._written = None  # digest of what the file holds
        self.saved_at = None  # when this process last wrote it
        self.saved_revision = None
        self.problem = None  # why the last write failed (one line), or None

    def changed(self, describe):
        if self._stopped:
            return
        self._describe = describe
        if self._writing:
            self._again = True
        elif self._timer is not None and self._timer.active():
            self._timer.reset(DEBOUNCE)
        else:
            self._timer = self._clock.callLater(DEBOUNCE, self._start)

    def stop(self):
        self._stopped = True  # a write in progress finishes; nothing more starts
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._describe = None

    def _start(self):
        self._timer = None
        if self._describe is None:
            return
        d = self._writing = ensureDeferred(self._write(self._describe))
        d.addBoth(self._done)  # at once if it finished already

    def idle(self):
        """A Deferred firing once no write is in progress."""
        if not self._writing:
            return succeed(None)
        d = Deferred()
        self._writing.addBoth(lambda result: d.callback(None) or result)
        return d

    async def _write(self, describe):
        doc, shas = describe()
        digest = hashlib.sha256(json.dumps([doc, sorted(shas)], sort_keys=True).encode())
        if digest.digest() == self._written:
            return
        blobs = {}
        for sha in sorted(shas):
            blob = await self._get_blob(sha)
            if blob is not None:
                blobs[sha] = blob
        saved_at = self._clock.seconds()
        await self._run(write_file, self.path, doc, blobs, saved_at)
        self._written = digest.digest()
        self.saved_at, self.saved_revision = saved_at, doc.get("revision")

    def _done(self, result):
        self._writing = None
        if isinstance(result, Failure):
            self._failed(result)
        elif self.problem is not None:
            log.info("filtering: the last-known-good policy is saved to {path} again",
                     path=self.path)
            self.problem = None
        if self._again:
            self._again = False
            self.changed(self._describe)

    def _failed(self, failure):
        reason = failure.getErrorMessage()
        error = failure.value
        if isinstance(error, OSError) and error.strerror:
            reason = error.strerror
        problem = (f"cannot save the last-known-good policy to {self.path} ({reason}); if "
                   f"the database cannot be opened at the next start, DNS answers without "
                   f"filtering")
        if problem != self.problem:
            self.problem = problem
            if isinstance(error, (OSError, StoreUnavailable)):
                log.warn("filtering: {problem}; trying again in {s:.0f} s", problem=problem,
                         s=RETRY)
            else:
                log.failure("filtering: {problem}", failure, problem=problem)
        if not self._again and self._timer is None and not self._stopped:
            self._timer = self._clock.callLater(RETRY, self._start)
