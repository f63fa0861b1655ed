"""
Configuration backup and restore.

GET /api/maintenance/export: every configuration entity as one JSON
document (a download), except what must not leave the node in it: secret
values (only their names are listed), admin accounts (password hashes),
sessions and API tokens.

POST /api/maintenance/import (``?dry_run=true`` first): validates the whole
document, then makes each kind it contains match it -- adding, changing and
removing entities -- in ONE store transaction (all or nothing; one
revision bump, so followers and the DNS policy see one change).  Kinds the
document does not contain are left alone.  ``validators`` (kind ->
callable(key, data) raising ValueError, returning the data to store -- e.g.
normalized as the API stores it -- or None to store it as it is) are the
owning subsystems' checks; a kind without one is unknown here (a backup of
a newer Sentinel, or edited) and refused, never stored unchecked.
"""

import re
import time

from twisted.internet.threads import deferToThread

from sentinel import __version__
from sentinel.api.base import DEFAULT_MAX_BODY, ApiError, Raw, endpoint
from sentinel.api.schemas import TIMESTAMP, array_of, nullable, obj
from sentinel.api.inputs import MAX_REQUEST_BODY
from sentinel.jsonout import encode_in_pieces
from sentinel.store.entities import encode

FORMAT, VERSION = "sentinel-backup", 1
NEVER = ("secret", "user", "session", "api_token")  # never exported or imported
INTEGER_KEYED = ("client", "rule", "blocklist", "rewrite")
MAX_ID = 2 ** 53  # the highest id the API addresses (and JavaScript counts exactly)
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
DIGITS = re.compile(r"^[1-9][0-9]{0,17}$")

BACKUP = obj({
    "format": {"const": FORMAT},
    "version": {"type": "integer", "description": f"format version ({VERSION})"},
    "sentinel_version": {"type": "string"},
    "exported_at": TIMESTAMP,
    "revision": {"type": "integer", "minimum": 0},
    "entities": {
        "type": "object",
        "description": "kind -> key -> data",
        "propertyNames": {"pattern": KIND_PATTERN},
        "additionalProperties": {
            "type": "object",
            "propertyNames": {"minLength": 1, "maxLength": 200,
                              "pattern": "^[^\\x00-\\x1f\\x7f]+$"},
            "additionalProperties": {"not": {"type": "null"}},
        },
    },
    "secrets": array_of({"type": "string"}, description="names of the secrets that were set"),
}, required=["format", "version", "entities"])
KEYS = array_of({"type": "string"})
RESULT = obj({
    "dry_run": {"type": "boolean"},
    "applied": {"type": "boolean"},
    "revision": nullable({"type": "integer"}),
    "changes": {"type": "object", "additionalProperties": obj(
        {"added": KEYS, "changed": KEYS, "removed": KEYS},
        required=["added", "changed", "removed"])},
    "unchanged": {"type": "integer", "minimum": 0},
    "secrets_missing": KEYS,
}, required=["dry_run", "applied", "revision", "changes", "unchanged", "secrets_missing"])


def _key_order(key):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def check_document(document, validators):
    """The entities to restore ({kind: {key: data}}, as their validators
    return them), or 400 with every problem found (nothing is applied)."""
    version = document["version"]
    if version != VERSION:
        made_by = "a newer" if version > VERSION else "an older"
        raise ApiError(400, "VALIDATION_ERROR",
                       f"version: this is a format {version} backup, made by {made_by} "
                       f"Sentinel; this one restores format {VERSION} only",
                       [{"field": "version", "message": f"format {VERSION} only"}])
    problems, entities = [], {}
    for kind, items in document["entities"].items():
        validate = validators.get(kind)
        if kind in NEVER or validate is None:
            message = (f"{kind} entities are never imported" if kind in NEVER else
                       f"unknown kind {kind!r} (a backup of a newer Sentinel?)")
            problems.append({"field": f"entities.{kind}", "message": message})
            continue
        entities[kind] = {}
        for key, data in items.items():
            field = f"entities.{kind}.{key}"
            if kind in INTEGER_KEYED and not (DIGITS.match(key) and int(key) <= MAX_ID):
                problems.append({"field": field, "message":
                                 f"keys of this kind are ids (1, 2, ... {MAX_ID})"})
                continue
            if len(encode(data).encode()) > DEFAULT_MAX_BODY:
                problems.append({"field": field, "message": f"larger than the "
                                 f"{DEFAULT_MAX_BODY // 1024} KiB the API takes for one entity"})
                continue
            try:
                checked = validate(key, data)
            except (ValueError, TypeError, KeyError) as e:
                problems.append({"field": field, "message": str(e) or type(e).__name__})
                continue
            entities[kind][key] = data if checked is None else checked
    _refuse(problems)
    return entities


def _refuse(problems):
    if problems:
        first = problems[0]
        raise ApiError(400, "VALIDATION_ERROR", f"{first['field']}: {first['message']}",
                       problems[:100])


def _valid(validate, stored):
    """{key: checked data} of the stored entities that pass ``validate``."""
    out = {}
    for e in stored:
        try:
            checked = validate(e.key, e.data)
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # damaged before this restore: not its business
        out[e.key] = e.data if checked is None else checked
    return out


async def check_consistency(ctx, entities, checks, validators):
    """400 if the configuration the restore leaves breaks a rule between
    entities: each check(state) -> [(kind, key, field, message)] sees its
    ``kinds`` as the document has them, or as stored for kinds it lacks.
    (The checking runs in a worker thread: the reactor serves DNS.)"""
    checks = [check for check in checks if set(check.kinds) & set(entities)]
    stored = {}
    for kind in sorted({kind for check in checks for kind in check.kinds} - set(entities)):
        stored[kind] = await ctx.list(kind) if kind in validators else []

    def find():
        have = dict(entities)
        have.update({kind: _valid(validators.get(kind), items) for kind, items in stored.items()})
        return [{"field": f"entities.{kind}.{key}", "message": f"{field}: {message}"}
                for check in checks
                for kind, key, field, message in check({k: have[k] for k in check.kinds})]

    _refuse(await deferToThread(find) if checks else [])


def _diff(current, wanted):
    """(added, changed, removed) keys, comparing data by canonical JSON."""
    added = [k for k in wanted if k not in current]
    changed = [k for k in wanted if k in current and encode(current[k]) != encode(wanted[k])]
    removed = [k for k in current if k not in wanted]
    return added, changed, removed


async def _plan(ctx, entities, hooks):
    """(changes, unchanged, work, before): before is {kind: {key: data}} of
    the entities the work changes or removes."""
    changes, unchanged, work, before = {}, 0, [], {}
    for kind in sorted(entities):
        wanted = entities[kind]
        if kind in hooks:
            wanted = await hooks[kind].prepare(ctx, wanted)
        current = {e.key: e.data for e in await ctx.list(kind)}
        added, changed, removed = await deferToThread(_diff, current, wanted)
        unchanged += len(wanted) - len(added) - len(changed)
        changes[kind] = {name: sorted(keys, key=_key_order) for name, keys in
                         (("added", added), ("changed", changed), ("removed", removed))}
        work += [(kind, k, wanted[k]) for k in added + changed]
        work += [(kind, k, None) for k in removed]
        before[kind] = {k: current[k] for k in changed + removed}
    return changes, unchanged, work, before


def export_document(snapshot, secrets, now):
    """The backup of ``snapshot`` as the bytes of its JSON document."""
    entities = {}
    for e in snapshot.entities:
        if e.kind not in NEVER:
            entities.setdefault(e.kind, {})[e.key] = e.data
    return encode_in_pieces({
        "format": FORMAT, "version": VERSION, "sentinel_version": __version__,
        "exported_at": now, "revision": snapshot.revision, "entities": entities,
        "secrets": secrets,
    })


def too_large_message(size):
    return (f"The configuration backup would be {size} bytes, more than the "
            f"{MAX_REQUEST_BODY} bytes (16 MiB) an import accepts, so it could not be "
            f"restored; nothing was exported. Remove rules, clients or rewrites you do not "
            f"need (or keep a whole-node backup: the database file with node.key).")


class MaintenanceApi:
    """hooks: kind -> object with ``async prepare(ctx, wanted) -> wanted``
    (what to restore of the document's {key: data}; also on dry runs) and
    ``async settle(ctx, before)`` (after the restore's writes, in its
    transaction; before: {key: data} of what it changed or removed).
    checks: callables with ``kinds``, see L{check_consistency}."""

    def __init__(self, store, secrets, validators=None, clock=None, hooks=None, checks=None):
        self._store = store
        self._secrets = secrets
        self._validators = validators if validators is not None else {}
        self._clock = clock
        self._hooks = hooks if hooks is not None else {}
        self._checks = checks if checks is not None else []

    def _now(self):
        return self._clock.seconds() if self._clock is not None else time.time()

    @endpoint("GET", "/api/maintenance/export", tag="maintenance", response=BACKUP,
              errors=(409,),
              summary="Download a configuration backup (no secret values, accounts, "
                      "sessions or tokens)")
    async def export(self, call):
        snapshot = await self._store.snapshot()
        secrets = sorted(await self._secrets.names())
        now = self._now()
        # 50,000 rules are ~7 MB of JSON: built in a thread, a member at a
        # time, so the reactor (DNS) is not held while it is made.
        body = await deferToThread(export_document, snapshot, secrets, now)
        if len(body) > MAX_REQUEST_BODY:
            raise ApiError(409, "BACKUP_TOO_LARGE", too_large_message(len(body)))
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        return Raw(body, "application/json; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="sentinel-backup-{stamp}.json"'})

    @endpoint("POST", "/api/maintenance/import", tag="maintenance", body=BACKUP,
              response=RESULT, max_body=MAX_REQUEST_BODY,
              query={"dry_run": {"type": "boolean"}},
              summary="Restore a backup (dry_run=true: only say what would change); "
                      "all or nothing")
    async def restore(self, call):
        document = call.body
        # Checking a big backup takes seconds: not on the reactor, which serves DNS.
        entities = await deferToThread(check_document, document, self._validators)
        dry_run = call.query.get("dry_run", False)

        async def preview(ctx):
            await check_consistency(ctx, entities, self._checks, self._validators)
            changes, unchanged, _, _ = await _plan(ctx, entities, self._hooks)
            return changes, unchanged, await ctx.current_revision()

        async def apply(ctx):
            await check_consistency(ctx, entities, self._checks, self._validators)
            changes, unchanged, work, before = await _plan(ctx, entities, self._hooks)
            for kind, key, data in work:
                if data is None:
                    await ctx.delete(kind, key)
                else:
                    await ctx.put(kind, key, data)
            for kind, hook in sorted(self._hooks.items()):
                if kind in before:
                    await hook.settle(ctx, before[kind])
            return changes, unchanged, await ctx.current_revision()

        run = self._store.read(preview) if dry_run else self._store.transact(apply)
        changes, unchanged, revision = await run
        have = set(await self._secrets.names())
        return {
            "dry_run": dry_run, "applied": not dry_run, "revision": revision,
            "changes": changes, "unchanged": unchanged,
            "secrets_missing": sorted(set(document.get("secrets", [])) - have),
        }
