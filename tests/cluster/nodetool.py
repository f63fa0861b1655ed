"""
Read and prepare a node's storage from outside the daemon, for end-to-end
tests (the daemon must not be running when it writes with SQLite):

    python -m tests.cluster.nodetool DATA_DIR DATABASE COMMAND [JSON]

    membership {"role", "leaderUrl", "secret": hex}   set cluster membership
    put [[kind, key, data|null], ...]                  one transaction (null deletes)
    blob "<base64>"                                    store a blob, print its sha
    dump                                               live entities, secrets unsealed

DATABASE is "" for the SQLite default in DATA_DIR.  Prints JSON.
"""

import base64
import json
import os
import sys

from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from sentinel.crypto import SecretBox, load_or_create_key
from sentinel.secrets import Secrets
from sentinel.startup import prepare_data_dir
from sentinel.store import Store
from sentinel.cluster.state import ClusterState, Membership


async def main(reactor, data_dir, database, command, arg=None):
    prepare_data_dir(data_dir)
    box = SecretBox(load_or_create_key(os.path.join(data_dir, "node.key")))
    url = database or "sqlite:///" + os.path.join(data_dir, "sentinel.db")
    store = Store.from_url(url, reactor)
    await store.start()
    secrets = Secrets(store, box)
    try:
        value = json.loads(arg) if arg else None
        if command == "membership":
            state = ClusterState(store, box, reactor)
            await state.load()
            secret = bytes.fromhex(value["secret"]) if value.get("secret") else None
            await state.save(Membership(value["role"], value.get("leaderUrl"), secret,
                                        reactor.seconds()))
            out = {"nodeId": state.node_id, "history": state.history}
        elif command == "put":
            async def body(ctx):
                for kind, key, data in value:
                    if data is None:
                        await ctx.delete(kind, key)
                    elif kind == "secret":
                        await ctx.put(kind, key, secrets.seal(key, data["value"]))
                    else:
                        await ctx.put(kind, key, data)
                return ctx.revision

            out = {"revision": await store.transact(body)}
        elif command == "blob":
            out = {"sha256": await store.put_blob(base64.b64decode(value))}
        elif command == "dump":
            snap = await store.snapshot()
            entities = []
            for e in snap.entities:
                data = {"value": secrets.unseal(e.key, e.data)} if e.kind == "secret" else e.data
                entities.append([e.kind, e.key, data])
            shas = await store.read(lambda ctx: ctx.blob_shas())
            out = {"revision": snap.revision, "entities": entities, "blobs": sorted(shas),
                   "marker": await store.get_local("cluster.sync")}
        else:
            raise SystemExit(f"unknown command {command}")
    finally:
        await store.stop()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    task.react(lambda reactor, *a: ensureDeferred(main(reactor, *a)), sys.argv[1:])
