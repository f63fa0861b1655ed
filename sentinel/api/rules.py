"""
Manual allow/block rules: /api/rules.  ``client_id`` null = global; else
the rule belongs to that client (or subnet).  Patterns: ``example.com``
(name and subdomains), ``*.example.com`` (subdomains only), ``|example.com|``
(exactly that name).  Allow beats block; a client's rules beat global ones.
"""

from sentinel.api.base import ApiError, endpoint
from sentinel.filtering import model
from sentinel.filtering.crud import EntityArea, duplicate, item_schema, list_schema, others

ITEM = item_schema(model.RULE)
ERRORS = (400, 404, 409)
LIST_QUERY = {
    "client_id": {"type": "integer", "minimum": 0, "maximum": 2 ** 53,
                  "description": "only this client's rules; 0 = only global rules"},
    "q": {"type": "string", "maxLength": 300, "description": "pattern substring"},
}


class RulesApi(EntityArea):
    kind = model.RULE
    what = "rule"

    async def check_refs(self, ctx, rule_id, data):
        client_id = data["client_id"]
        if client_id is not None and await ctx.get(model.CLIENT, client_id) is None:
            raise ApiError(400, "VALIDATION_ERROR", f"client_id: no client {client_id}",
                           [{"field": "client_id", "message": f"no client {client_id}"}])
        for _, other in await others(ctx, model.RULE, rule_id):
            if (other.get("pattern"), other.get("action"), other.get("client_id")) == \
                    (data["pattern"], data["action"], client_id):
                raise duplicate(f"The same {data['action']} rule for {data['pattern']!r} "
                                f"exists already.")

    @endpoint("GET", "/api/rules", tag="rules", summary="List rules", query=LIST_QUERY,
              response=list_schema(ITEM))
    async def list_rules(self, call):
        client = call.query.get("client_id")
        q = (call.query.get("q") or "").lower()

        def keep(data):
            if client is not None and (data.get("client_id") or 0) != client:
                return False
            return q in str(data.get("pattern", "")).lower()

        return await self.list_items(keep)

    @endpoint("POST", "/api/rules", tag="rules", summary="Add a rule",
              body=model.body_schema(model.RULE), response=ITEM, status=201, errors=ERRORS)
    async def create_rule(self, call):
        return await self.create_item(call.body)

    @endpoint("GET", "/api/rules/{rule_id}", tag="rules", summary="One rule", response=ITEM,
              errors=(404,))
    async def get_rule(self, call, rule_id):
        return await self.get_item(rule_id)

    @endpoint("PUT", "/api/rules/{rule_id}", tag="rules", summary="Replace a rule",
              body=model.body_schema(model.RULE), response=ITEM, errors=ERRORS)
    async def replace_rule(self, call, rule_id):
        return await self.update_item(rule_id, call.body, partial=False)

    @endpoint("PATCH", "/api/rules/{rule_id}", tag="rules", summary="Change some fields",
              body=model.body_schema(model.RULE, partial=True), response=ITEM, errors=ERRORS)
    async def patch_rule(self, call, rule_id):
        return await self.update_item(rule_id, call.body, partial=True)

    @endpoint("DELETE", "/api/rules/{rule_id}", tag="rules", summary="Delete a rule",
              status=204, errors=(404,))
    async def delete_rule(self, call, rule_id):
        return await self.delete_item(rule_id)
