"""
The CRUD logic the filtering API areas share: entities of one kind with
integer ids, validated by L{sentinel.filtering.model}, with cross-entity
checks (duplicates, references) made inside the same store transaction as
the write, so two concurrent requests cannot both pass them.
"""

from sentinel.api.base import ApiError, Reply, not_found
from sentinel.filtering import model

MAX_ID = 2 ** 53


def parse_id(value, what):
    """A path parameter -> int id, or 404 (ids are never anything else)."""
    text = str(value)
    # ASCII digits only: str.isdigit() also takes "²" (int() refuses it) and
    # "１" or "١" (int() reads them as 1: another entity's id).
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        raise not_found(what)
    return int(text)


def invalid(error):
    return ApiError(400, "VALIDATION_ERROR", f"{error.field}: {error.message}",
                    [{"field": error.field, "message": error.message}])


def duplicate(message):
    return ApiError(409, "DUPLICATE", message)


def item_schema(kind, extra=None):
    """Response schema of one entity: its fields plus id."""
    props = {"id": {"type": "integer"}}
    props.update(model.FIELDS[kind])
    props.update(extra or {})
    return {"type": "object", "required": ["id"], "properties": props}


def list_schema(item):
    return {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": item}}}


class EntityArea:
    """Subclasses set kind/what and may override check_refs/before_write/present/
    before_delete."""

    kind = None
    what = None

    def __init__(self, store):
        self.store = store

    # -- hooks ------------------------------------------------------------

    async def check_refs(self, ctx, entity_id, data):
        """Raise ApiError if data conflicts with other entities."""

    async def before_write(self, ctx, entity_id, data):
        """After the checks, in the same transaction: what else changes with it."""

    async def before_delete(self, ctx, entity_id, data):
        """Clean up or refuse (ApiError) before the entity is deleted."""

    def present(self, entity_id, data):
        out = {"id": entity_id}
        out.update({k: v for k, v in data.items() if k in model.FIELDS[self.kind]})
        return out

    # -- operations ---------------------------------------------------------

    async def list_items(self, keep=lambda data: True):
        entities = await self.store.list(self.kind)
        return {"items": [self.present(int(e.key), e.data) for e in entities
                          if e.key.isdigit() and isinstance(e.data, dict) and keep(e.data)]}

    async def get_item(self, raw_id):
        entity_id = parse_id(raw_id, self.what)
        entity = await self.store.get(self.kind, entity_id)
        if entity is None:
            raise not_found(self.what)
        return self.present(entity_id, entity.data)

    def _checked(self, data):
        try:
            return model.check(self.kind, data)
        except model.Invalid as e:
            raise invalid(e) from None

    async def create_item(self, body):
        data = self._checked(body)

        async def tx(ctx):
            await self.check_refs(ctx, None, data)
            await self.before_write(ctx, None, data)
            return await ctx.create(self.kind, data)

        entity = await self.store.transact(tx)
        return Reply(201, self.present(int(entity.key), entity.data))

    async def update_item(self, raw_id, body, partial):
        entity_id = parse_id(raw_id, self.what)

        async def tx(ctx):
            current = await ctx.get(self.kind, entity_id)
            if current is None:
                raise not_found(self.what)
            merged = dict(current.data) if partial else {
                k: v for k, v in current.data.items() if k not in model.FIELDS[self.kind]}
            merged.update(body)
            data = self._checked(merged)
            await self.check_refs(ctx, entity_id, data)
            await self.before_write(ctx, entity_id, data)
            return await ctx.put(self.kind, entity_id, data)

        entity = await self.store.transact(tx)
        return self.present(entity_id, entity.data)

    async def delete_item(self, raw_id):
        entity_id = parse_id(raw_id, self.what)

        async def tx(ctx):
            current = await ctx.get(self.kind, entity_id)
            if current is None:
                raise not_found(self.what)
            await self.before_delete(ctx, entity_id, current.data)
            await ctx.delete(self.kind, entity_id)

        await self.store.transact(tx)
        return Reply(204)


async def others(ctx, kind, entity_id):
    """(id, data) of the live entities of a kind except entity_id."""
    out = []
    for e in await ctx.list(kind):
        if e.key.isdigit() and int(e.key) != entity_id and isinstance(e.data, dict):
            out.append((int(e.key), e.data))
    return out
