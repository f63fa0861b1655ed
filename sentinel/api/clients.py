"""
Clients and subnets: /api/clients.  A client is identified by IP addresses
and/or CIDR networks; the most specific match wins (docs/FILTERING.md).
Deleting a client deletes its own rules too.
"""

from twisted.logger import Logger

from sentinel.api.base import ApiError, endpoint
from sentinel.filtering import model
from sentinel.filtering import schedule as sched
from sentinel.filtering import settings
from sentinel.filtering.crud import EntityArea, duplicate, item_schema, list_schema, others

ITEM = item_schema(model.CLIENT)
ERRORS = (400, 404, 409)
log = Logger()


async def pin_time_zone(ctx):
    """
    Schedules run in the filtering setting ``time_zone``; empty means each
    node's host zone, which differs between nodes of a cluster more often
    than not (a container without TZ is in UTC).  So when a schedule is
    saved while it is empty, the zone this node (the leader: followers take
    no changes) names is written into it, in the same transaction: synced,
    every node then starts and ends windows at the same moment, also after
    a failover.  Nothing is written when this host names no zone.
    """
    entity = await ctx.get("setting", settings.FILTERING)
    data = settings.filtering(entity.data if entity else None)
    if data["time_zone"]:
        return
    name = sched.named_host_zone()
    if not name:
        return
    data["time_zone"] = name
    await ctx.put("setting", settings.FILTERING, data)
    log.info("filtering: schedules run in {zone} (this node's time zone, now written into "
             "the filtering settings so that every node of a cluster uses it)", zone=name)


class ClientsApi(EntityArea):
    kind = model.CLIENT
    what = "client"

    async def check_refs(self, ctx, client_id, data):
        name = data["name"].casefold()
        mine = set(data["addresses"])
        for other_id, other in await others(ctx, model.CLIENT, client_id):
            if str(other.get("name", "")).casefold() == name:
                raise duplicate(f"A client named {data['name']!r} exists already.")
            taken = mine & set(other.get("addresses") or ())
            if taken:
                raise duplicate(
                    f"{sorted(taken)[0]} already belongs to client {other.get('name')!r}.")
        known = {int(e.key) for e in await ctx.list(model.BLOCKLIST)}
        wanted = [("blocklists", i) for i in data["blocklists"]]
        for n, s in enumerate(data["schedules"]):
            wanted += [(f"schedules.{n}.blocklists", i) for i in s["blocklists"]]
        for field, list_id in wanted:
            if list_id not in known:
                raise ApiError(400, "VALIDATION_ERROR", f"{field}: no blocklist {list_id}",
                               [{"field": field, "message": f"no blocklist {list_id}"}])

    async def before_write(self, ctx, client_id, data):
        if data["schedules"]:
            await pin_time_zone(ctx)

    async def before_delete(self, ctx, client_id, data):
        for rule_id, rule in await others(ctx, model.RULE, None):
            if rule.get("client_id") == client_id:
                await ctx.delete(model.RULE, rule_id)

    @endpoint("GET", "/api/clients", tag="clients", summary="List clients and subnets",
              response=list_schema(ITEM))
    async def list_clients(self, call):
        return await self.list_items()

    @endpoint("POST", "/api/clients", tag="clients", summary="Add a client or subnet",
              body=model.body_schema(model.CLIENT), response=ITEM, status=201, errors=ERRORS)
    async def create_client(self, call):
        return await self.create_item(call.body)

    @endpoint("GET", "/api/clients/{client_id}", tag="clients", summary="One client",
              response=ITEM, errors=(404,))
    async def get_client(self, call, client_id):
        return await self.get_item(client_id)

    @endpoint("PUT", "/api/clients/{client_id}", tag="clients", summary="Replace a client",
              body=model.body_schema(model.CLIENT), response=ITEM, errors=ERRORS)
    async def replace_client(self, call, client_id):
        return await self.update_item(client_id, call.body, partial=False)

    @endpoint("PATCH", "/api/clients/{client_id}", tag="clients",
              summary="Change some fields of a client (e.g. the kill switch)",
              body=model.body_schema(model.CLIENT, partial=True), response=ITEM, errors=ERRORS)
    async def patch_client(self, call, client_id):
        return await self.update_item(client_id, call.body, partial=True)

    @endpoint("DELETE", "/api/clients/{client_id}", tag="clients",
              summary="Delete a client and its own rules", status=204, errors=(404,))
    async def delete_client(self, call, client_id):
        return await self.delete_item(client_id)
