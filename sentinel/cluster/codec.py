"""
The sync payload (pure).  One JSON envelope per answer::

    {"v": 1, "mode": "unchanged" | "changes" | "full",
     "leader": NODE_ID, "history": HISTORY_ID, "revision": N,
     "since": M,                  # "changes": the revision they start after
     "sealed": BASE64}            # absent when unchanged

``sealed`` is AES-256-GCM under the cluster wire key, bound (associated
data) to the request's nonce and to the envelope fields, over::

    {"entities": [[kind, key, revision, data], ...],   # data null: deleted
     "blobs": [sha256, ...],                           # blob contents to have
     "marks": {kind: N, ...}}                          # "full": highest integer
                                                       # key ever used, per kind

so configuration (including password hashes and sessions) never crosses
the network in clear, and secrets travel as plaintext only inside it: the
leader unseals them from its node key, the follower seals them under its
own.  The whole response is also HMAC-signed (see L{signing}).

Everything a follower receives is validated here; a bad payload raises
L{CodecError} and nothing is applied.
"""

import base64
import os
import re

import attr
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sentinel import strictjson
from sentinel.jsonout import encode_in_pieces
from sentinel.strictjson import StrictJsonError

VERSION = 1
MODES = ("unchanged", "changes", "full")
KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HISTORY = re.compile(r"^[0-9a-f]{16,64}$")
MAX_KEY = 512
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # never in a key (PostgreSQL stores no NUL)


class CodecError(Exception):
    code = "BAD_PAYLOAD"


@attr.s(frozen=True, auto_attribs=True)
class WireEntity:
    kind: str
    key: str
    revision: int
    data: object  # None: deleted (only in "changes")


@attr.s(frozen=True, auto_attribs=True)
class Batch:
    mode: str
    leader: str
    history: str
    revision: int
    since: int = 0
    entities: tuple = ()
    blobs: tuple = ()
    # {kind: highest integer key the leader ever used, deleted ones included}
    # (full snapshots only: they carry no tombstones).  A follower reserves
    # these keys so it never hands them out again if it becomes the leader.
    marks: dict = attr.ib(factory=dict)


def _dumps(value) -> bytes:
    # A member at a time: the leader encodes a large batch (a full snapshot
    # of 50,000 rules) in a worker thread, and json.dumps would hold the GIL,
    # and so DNS, for all of it.
    return encode_in_pieces(value)


def _aad(nonce, batch):
    return (f"sentinel-sync-v1|{nonce}|{batch.mode}|{batch.leader}|{batch.history}|"
            f"{batch.revision}|{batch.since}").encode("ascii")


def encode(batch, wire_key, request_nonce) -> bytes:
    """The response body for ``batch`` answering the request ``request_nonce``."""
    env = {"v": VERSION, "mode": batch.mode, "leader": batch.leader,
           "history": batch.history, "revision": batch.revision, "since": batch.since}
    if batch.mode != "unchanged":
        inner = _dumps({
            "entities": [[e.kind, e.key, e.revision, e.data] for e in batch.entities],
            "blobs": sorted(set(batch.blobs)),
            "marks": dict(batch.marks),
        })
        nonce = os.urandom(12)
        aad = _aad(request_nonce, batch)
        sealed = nonce + AESGCM(wire_key).encrypt(nonce, inner, aad)
        # {..., "sealed": "<base64>"}, the base64 made in pieces and not passed
        # through json.dumps: each of those holds the GIL for all of 10 MB.
        return _dumps(env)[:-1] + b',"sealed":"' + _b64(sealed) + b'"}'
    return _dumps(env)


def _b64(data, piece=3 * 256 * 1024):
    """base64.b64encode(data), in pieces (whole groups of 3 bytes: the same text)."""
    view = memoryview(data)
    return b"".join(base64.b64encode(view[at:at + piece]) for at in range(0, len(data), piece))


def decode(body: bytes, wire_key, request_nonce) -> Batch:
    """Parse, decrypt and validate a response body (raises CodecError)."""
    env = _json(body)
    if not isinstance(env, dict):
        raise CodecError("not a sync payload")
    version = env.get("v")
    if type(version) is int and version > VERSION:
        # Version skew: say what to do, not only that something is wrong.
        raise CodecError(f"the leader runs a newer Sentinel (sync payload version "
                         f"{version}; this node reads version {VERSION}): upgrade this node")
    if version != VERSION:
        raise CodecError(f"unknown sync payload version {_show(version)}")
    mode, leader = env.get("mode"), env.get("leader")
    history, revision = env.get("history"), env.get("revision")
    since = env.get("since")
    if mode not in MODES:
        raise CodecError(f"unknown mode {_show(mode)}")
    if not isinstance(leader, str) or not re.match(r"^[0-9a-f]{8,64}$", leader):
        raise CodecError("bad leader id")
    if not isinstance(history, str) or not HISTORY.match(history):
        raise CodecError("bad history id")
    if type(revision) is not int or revision < 0:
        raise CodecError("bad revision")
    if type(since) is not int or not 0 <= since <= revision:
        raise CodecError("bad since")
    head = Batch(mode, leader, history, revision, since)
    if mode == "unchanged":
        return head
    try:
        sealed = base64.b64decode(env.get("sealed", "").encode("ascii"), validate=True)
    except (ValueError, AttributeError, UnicodeEncodeError):
        raise CodecError("sealed part is not base64") from None
    if len(sealed) < 12 + 16:
        raise CodecError("sealed part too short")
    try:
        inner = AESGCM(wire_key).decrypt(
            sealed[:12], sealed[12:], _aad(request_nonce, head))
    except InvalidTag:
        raise CodecError("sealed part does not decrypt under the cluster key") from None
    inner = _json(inner)
    if not isinstance(inner, dict):
        raise CodecError("sealed part is not an object")
    entities = tuple(_entity(item, mode) for item in _list(inner, "entities"))
    blobs = tuple(_list(inner, "blobs"))
    for sha in blobs:
        if not isinstance(sha, str) or not SHA256.match(sha):
            raise CodecError("bad blob reference")
    marks = _marks(inner.get("marks", {}))
    seen = set()
    for e in entities:
        if (e.kind, e.key) in seen:
            raise CodecError(f"entity {e.kind}/{_show(e.key)} sent twice")
        seen.add((e.kind, e.key))
    return attr.evolve(head, entities=entities, blobs=blobs, marks=marks)


MAX_MARK = 10**18 - 1  # integer keys have at most 18 digits (a BIGINT)


def _marks(value):
    if not isinstance(value, dict):
        raise CodecError("marks is not an object")
    for kind, top in value.items():
        if not KIND.match(kind) or type(top) is not int or not 0 < top <= MAX_MARK:
            raise CodecError(f"bad key mark for {_show(kind)}")
    return value


def _show(value, limit=40):
    """A value from the payload, as error messages show it: short, one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _json(raw):
    """Strict JSON, as the leader's API accepts it (L{sentinel.strictjson})."""
    try:
        return strictjson.loads(raw)
    except StrictJsonError as e:
        raise CodecError(f"not JSON: {e}") from None


def _list(obj, name):
    value = obj.get(name)
    if not isinstance(value, list):
        raise CodecError(f"{name} is not a list")
    return value


def _entity(item, mode):
    if not isinstance(item, list) or len(item) != 4:
        raise CodecError("entity is not [kind, key, revision, data]")
    kind, key, revision, data = item
    if not isinstance(kind, str) or not KIND.match(kind):
        raise CodecError(f"bad entity kind {_show(kind)}")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or CONTROL.search(key):
        raise CodecError(f"bad {kind} key")
    if type(revision) is not int or revision < 1:
        raise CodecError(f"bad revision of {kind}/{_show(key)}")
    if data is None and mode == "full":
        raise CodecError("a full snapshot carries no deletions")
    if kind == "secret" and data is not None and (
            not isinstance(data, dict) or not isinstance(data.get("value"), str)):
        raise CodecError(f"bad secret {_show(key)}")
    if not _shallow(data):
        raise CodecError(f"{kind}/{_show(key)} is nested deeper than {MAX_DEPTH} levels")
    return WireEntity(kind, key, revision, data)


MAX_DEPTH = 200  # configuration is a few levels deep; JSON encoding recurses


def _shallow(data):
    return strictjson.depth(data) <= MAX_DEPTH


def blob_refs(data, known):
    """The blob shas among the strings in ``data`` that are in ``known``."""
    found = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if len(value) == 64 and value in known:
                found.add(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return found


def new_history_id() -> str:
    return os.urandom(16).hex()
