"""
Local DNS rewrites: /api/dns/rewrites.  ``domain`` is a name (exactly that
name) or ``*.name`` (its subdomains); ``answer`` an IPv4/IPv6 address or a
host name (answered as a CNAME the server resolves for the client).
"""

from sentinel.api.base import ApiError, endpoint
from sentinel.filtering import model
from sentinel.filtering.crud import EntityArea, duplicate, item_schema, list_schema, others

ITEM = item_schema(model.REWRITE)
ERRORS = (400, 404, 409)


class RewritesApi(EntityArea):
    kind = model.REWRITE
    what = "rewrite"

    async def check_refs(self, ctx, rewrite_id, data):
        is_cname = model.rewrite_type(data["answer"]) == 5
        for _, other in await others(ctx, model.REWRITE, rewrite_id):
            if other.get("domain") != data["domain"]:
                continue
            if other.get("answer") == data["answer"]:
                raise duplicate(f"{data['domain']} -> {data['answer']} exists already.")
            if is_cname or model.rewrite_type(str(other.get("answer"))) == 5:
                raise ApiError(409, "CONFLICT", f"{data['domain']} has another answer; a "
                                                f"name with a CNAME can have no other answers.")

    @endpoint("GET", "/api/dns/rewrites", tag="rewrites", summary="List local rewrites",
              response=list_schema(ITEM))
    async def list_rewrites(self, call):
        return await self.list_items()

    @endpoint("POST", "/api/dns/rewrites", tag="rewrites", summary="Add a local rewrite",
              body=model.body_schema(model.REWRITE), response=ITEM, status=201, errors=ERRORS)
    async def create_rewrite(self, call):
        return await self.create_item(call.body)

    @endpoint("GET", "/api/dns/rewrites/{rewrite_id}", tag="rewrites", summary="One rewrite",
              response=ITEM, errors=(404,))
    async def get_rewrite(self, call, rewrite_id):
        return await self.get_item(rewrite_id)

    @endpoint("PUT", "/api/dns/rewrites/{rewrite_id}", tag="rewrites",
              summary="Replace a rewrite", body=model.body_schema(model.REWRITE),
              response=ITEM, errors=ERRORS)
    async def replace_rewrite(self, call, rewrite_id):
        return await self.update_item(rewrite_id, call.body, partial=False)

    @endpoint("PATCH", "/api/dns/rewrites/{rewrite_id}", tag="rewrites",
              summary="Change some fields", body=model.body_schema(model.REWRITE, partial=True),
              response=ITEM, errors=ERRORS)
    async def patch_rewrite(self, call, rewrite_id):
        return await self.update_item(rewrite_id, call.body, partial=True)

    @endpoint("DELETE", "/api/dns/rewrites/{rewrite_id}", tag="rewrites",
              summary="Delete a rewrite", status=204, errors=(404,))
    async def delete_rewrite(self, call, rewrite_id):
        return await self.delete_item(rewrite_id)
