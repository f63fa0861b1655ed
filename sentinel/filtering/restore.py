"""
What a restored backup does with blocklist contents.  A backup holds each
list's entity, whose ``content`` names the downloaded list by the sha256 of
its blob, but not the blob: restored on another node (or after the list
was refreshed since), that blob is not here.  Such a list keeps the
contents it has here if it has the same URL (the newer download: no gap in
filtering), or else is restored without ``content``/``status``, so the
leader downloads it at once (a conditional download with the backup's ETag
would get "not modified" and leave it empty for good).  Contents a restore no longer refers to are
released like a deletion through the API releases them.
"""

from sentinel.filtering import model
from sentinel.filtering.refresher import release_blob

RUNTIME = ("content", "status")  # written by the refresher


def _sha(data):
    content = data.get("content") if isinstance(data, dict) else None
    sha = content.get("sha256") if isinstance(content, dict) else None
    return sha if isinstance(sha, str) else None


class BlocklistRestore:
    """Registered for kind ``blocklist`` with the backup import."""

    kind = model.BLOCKLIST

    async def prepare(self, ctx, wanted):
        """{key: data} to restore, without contents that are not stored here."""
        have = await ctx.blob_shas()
        out = {}
        for key, data in wanted.items():
            if "content" in data and _sha(data) not in have:
                data = {k: v for k, v in data.items() if k not in RUNTIME}
                here = await ctx.get(self.kind, key)
                here = here.data if here is not None and isinstance(here.data, dict) else {}
                content = here.get("content")
                if here.get("url") == data.get("url") and _sha(here) in have \
                        and content.get("url") == data.get("url"):
                    data.update({k: here[k] for k in RUNTIME if k in here})
            out[key] = data
        return out

    async def settle(self, ctx, before):
        """After the restore: release the contents the lists in ``before``
        ({key: data} changed or removed) had, unless a list still uses them."""
        for sha in sorted({_sha(data) for data in before.values()} - {None}):
            await release_blob(ctx, sha, None)
