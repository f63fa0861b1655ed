"""
What a follower does with a L{Batch}: decide whether it may apply it
(never go back in time), plan the differences against local state (pure),
and apply them inside ONE store transaction together with the fetched blob
contents and the new sync position — all or nothing.

Entities are compared in their wire form (secrets as plaintext), by
canonical JSON text, so an equal entity is never rewritten: no revision
bump, no policy rebuild, no cache flush.
"""

import re

import attr

from sentinel.crypto import DecryptError
from sentinel.store.entities import encode as canonical

from sentinel.cluster import localsessions
from sentinel.cluster.codec import blob_refs

MARKER = "cluster.sync"  # node_state: the leader position this node holds
# Settings that describe this node (cluster membership, HA, listeners) are
# kept in node_state by design; should one ever be an entity, it must not
# cross the wire in either direction.
LOCAL_SETTING = re.compile(r"^(cluster|ha|listen)([._:-]|$)")
INT_KEY = re.compile(r"[0-9]{1,18}")  # as the store's create() allocates them


class ApplyError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def synced(kind, key):
    return not (kind == "setting" and LOCAL_SETTING.match(key))


def valid_marker(marker):
    """The stored sync position, or None if it is missing or damaged."""
    if isinstance(marker, dict) and isinstance(marker.get("history"), str) \
            and type(marker.get("revision")) is int:
        return marker
    return None


def check_order(marker, batch, force=False):
    """
    Refuse a batch that would take this node back in time (same history,
    lower revision) unless forced, and incremental changes that do not
    start where this node is.  marker: {"history", "revision"} or None.
    """
    same = bool(marker) and marker.get("history") == batch.history
    if same and batch.revision < marker.get("revision", 0) and not force:
        raise ApplyError(
            "LEADER_BEHIND",
            f"The leader is at revision {batch.revision}, older than the "
            f"{marker['revision']} this node already has (was it restored from a "
            f"backup?). Nothing was applied; use 'resync' to accept it.",
        )
    behind = marker.get("behind") if same else None
    if type(behind) is int and not force:
        # The leader went back once (L{remember_behind}): its revisions after
        # that point are not the ones this node holds, so "changes since"
        # would skip what the two timelines do not share -- even once the
        # leader has passed this node's revision again.
        raise ApplyError(
            "LEADER_BEHIND",
            f"The leader went back to revision {behind}, older than the "
            f"{marker['revision']} this node has (was it restored from a backup?); "
            f"its later revisions are not the ones this node holds. Nothing was "
            f"applied; use 'resync' to accept the leader's configuration.",
        )
    if batch.mode == "changes" and not (same and marker.get("revision") == batch.since):
        raise ApplyError(
            "OUT_OF_ORDER", "Incremental changes do not start at this node's revision.")


async def remember_behind(ctx, batch, still_member):
    """
    Store in the sync position that its leader went back to ``batch``'s
    revision (LEADER_BEHIND), so that only a resync moves this node on: a
    leader restored from an older copy of its database counts again from
    there, and once it passes this node's revision its incremental answers
    would silently leave out everything the two timelines do not share.
    """
    marker = valid_marker(await ctx.get_local(MARKER))
    if (not still_member() or marker is None or marker.get("history") != batch.history
            or batch.revision >= marker["revision"] or type(marker.get("behind")) is int):
        return  # not behind this position (moved on meanwhile), or known already
    await ctx.set_local(MARKER, dict(marker, behind=batch.revision))


@attr.s(frozen=True, auto_attribs=True)
class Plan:
    puts: tuple  # ((kind, key, wire data), ...)
    deletes: tuple  # ((kind, key), ...)

    @property
    def empty(self):
        return not self.puts and not self.deletes

    def counts(self):
        out = {}
        for kind, _, _ in self.puts:
            out.setdefault(kind, {"put": 0, "deleted": 0})["put"] += 1
        for kind, _ in self.deletes:
            out.setdefault(kind, {"put": 0, "deleted": 0})["deleted"] += 1
        return out


def plan(mode, local, entities):
    """
    local: {(kind, key): wire data} of this node (for "full": every synced
    entity; for "changes": at least those named in ``entities``).
    """
    puts, deletes, seen = [], [], set()
    for e in entities:
        if not synced(e.kind, e.key):
            continue
        ident = (e.kind, e.key)
        seen.add(ident)
        have = local.get(ident)
        if e.data is None:
            if have is not None:
                deletes.append(ident)
        elif have is None or canonical(have) != canonical(e.data):
            puts.append((e.kind, e.key, e.data))
    if mode == "full":
        deletes.extend(
            ident for ident in sorted(local)
            if ident not in seen and synced(*ident))
    return Plan(tuple(puts), tuple(deletes))


@attr.s(frozen=True, auto_attribs=True)
class Applied:
    mode: str
    revision: int  # leader revision now held
    local_revision: int  # this node's store revision after the apply (None: unchanged)
    counts: dict
    blobs_added: int
    blobs_removed: int
    ids_reserved: int = 0  # integer keys recorded as used (see key_marks)
    local_sessions_ended: int = 0  # see sentinel.cluster.localsessions

    @property
    def changed(self):
        return bool(self.counts) or bool(self.blobs_added or self.blobs_removed
                                         or self.ids_reserved or self.local_sessions_ended)


class Applier:
    """
    secrets: an object with seal(name, value) -> data and unseal(name, data)
    -> str (L{sentinel.secrets.Secrets}).
    """

    def __init__(self, secrets):
        self._secrets = secrets

    def _wire(self, entity):
        if entity.kind != "secret":
            return entity.data
        try:
            return {"value": self._secrets.unseal(entity.key, entity.data)}
        except (DecryptError, KeyError, TypeError, ValueError):
            return {"unreadable": True}  # never equal: gets replaced

    def _local(self, kind, key, data):
        if kind == "secret":
            return self._secrets.seal(key, data["value"])
        return data

    async def apply(self, ctx, batch, fetched, force=False, still_valid=lambda: True):
        """
        Apply ``batch`` in the transaction ``ctx``; fetched: {sha: bytes}
        (already verified).  Raises ApplyError (the transaction rolls back).
        """
        marker = valid_marker(await ctx.get_local(MARKER))
        check_order(marker, batch, force)
        if batch.mode == "full":
            snap = await ctx.snapshot()
            local = {(e.kind, e.key): self._wire(e) for e in snap.entities}
        else:
            local = {}
            for e in batch.entities:
                got = await ctx.get(e.kind, e.key)
                if got is not None:
                    local[(e.kind, e.key)] = self._wire(got)
        todo = plan(batch.mode, local, batch.entities)
        have = await ctx.blob_shas()
        missing = [s for s in batch.blobs if s not in have and s not in fetched]
        if missing:
            raise ApplyError("BLOB_MISSING", f"{len(missing)} blob(s) were not downloaded.")
        added = 0
        for sha in batch.blobs:
            if sha not in have:
                await ctx.put_blob(fetched[sha])
                have.add(sha)
                added += 1
        touched = set()
        for kind, key, data in todo.puts:
            await ctx.put(kind, key, self._local(kind, key, data))
            touched |= blob_refs(data, have) | blob_refs(local.get((kind, key)), have)
        for kind, key in todo.deletes:
            await ctx.delete(kind, key)
            touched |= blob_refs(local.get((kind, key)), have)
        removed = 0
        if touched or (batch.mode == "full" and not todo.empty):
            removed = await _collect_blobs(ctx, have)
        reserved = 0
        for kind, top in sorted(key_marks(batch).items()):
            reserved += await ctx.reserve(kind, top)
        ended = await localsessions.follow(ctx, batch.mode, batch.entities)
        if not still_valid():
            raise ApplyError("ABORTED", "Cluster configuration changed during the sync.")
        await ctx.set_local(MARKER, {"history": batch.history, "revision": batch.revision,
                                     "leader": batch.leader})
        return Applied(batch.mode, batch.revision, ctx.revision, todo.counts(), added, removed,
                       reserved, ended)


def key_marks(batch):
    """
    {kind: highest integer key} this follower must never allocate: the
    leader's marks (full snapshots, which carry no tombstones) and every
    integer key in the batch — deletions of entities this node never had
    included — so a follower promoted to leader never reuses an id.
    """
    marks = dict(batch.marks)
    for e in batch.entities:
        if INT_KEY.fullmatch(e.key) and int(e.key) > 0 and synced(e.kind, e.key):
            marks[e.kind] = max(marks.get(e.kind, 0), int(e.key))
    return marks


async def _collect_blobs(ctx, have):
    """Drop blobs no live entity refers to any more (followers never download)."""
    snap = await ctx.snapshot()
    used = set()
    for e in snap.entities:
        if e.kind != "secret":
            used |= blob_refs(e.data, have)
    unused = sorted(have - used)
    if unused:
        await ctx.delete_blobs(unused)
    return len(unused)
