"""
The longest reactor turn (CPU time of the reactor thread, so the machine's
other load does not count) while the admin API answers
``GET /api/maintenance/export`` for a large configuration, rendered as the
site renders it.  A 1 ms ``LoopingCall`` measures it, as bench.pgblob does.

    .venv/bin/python -m bench.exportstall [--rules 50000] [--tree OTHER_CHECKOUT]
        [--database postgresql://...]

The store is a SQLite file in a temporary directory (or a fresh PostgreSQL
database with --pg); the rules are written straight into the config table.
About 10 s.
"""

import argparse
import json
import os
import shutil
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tree", help="measure the checkout at this path instead")
    p.add_argument("--pg", action="store_true", help="a fresh PostgreSQL test database")
    args = p.parse_args()
    if args.tree:
        from bench import use_tree

        use_tree(args.tree)

    from twisted.internet import defer, reactor, task
    from twisted.web.test.requesthelper import DummyRequest

    from sentinel.api import site as site_module
    from sentinel.api.base import Call, endpoints_of
    from sentinel.api.maintenance import MaintenanceApi
    from sentinel.dns.service import tune_runtime
    from sentinel.store.store import Store

    tune_runtime()
    directory = tempfile.mkdtemp(prefix="sentinel-exportstall-")
    drop = None
    if args.pg:
        from tests.support.pg import create_database
        url, drop = create_database()
    else:
        url = "sqlite:///" + os.path.join(directory, "sentinel.db")
    worst, last = [0.0], [time.thread_time()]

    def tick():
        now = time.thread_time()
        worst[0] = max(worst[0], now - last[0])
        last[0] = now

    class Secrets:
        async def names(self):
            return []

    async def run():
        store = Store.from_url(url, reactor)
        await store.start()
        rows = [("rule", str(i), 1, json.dumps(
            {"client_id": None, "pattern": f"ads{i}.tracker-{i % 97}.example.com",
             "action": "block", "enabled": True, "comment": "from the family list"}))
            for i in range(1, args.rules + 1)]

        async def fill(tx):
            await tx.executemany("INSERT INTO config (kind, key, revision, data) "
                                 "VALUES (?, ?, ?, ?)", rows)
        await store.db.run(fill)
        api = MaintenanceApi(store, Secrets())
        (spec, handler), = [(s, h) for s, h in endpoints_of(api) if s.method == "GET"]
        ticker = task.LoopingCall(tick)
        ticker.start(0.001)
        for _ in range(args.rounds):
            await task.deferLater(reactor, 0.3, lambda: None)
            worst[0], last[0] = 0.0, time.thread_time()
            t = time.perf_counter()
            request = DummyRequest([b""])
            body = site_module._render(request, spec, await handler(Call(request, spec)))
            if isinstance(body, defer.Deferred):
                body = await body
            took = time.perf_counter() - t
            print(f"{args.rules} rules: export {len(body) / 1e6:.1f} MB in {took * 1e3:.0f} ms, "
                  f"longest reactor turn {worst[0] * 1e3:.1f} ms", flush=True)
        ticker.stop()
        await store.stop()

    d = defer.ensureDeferred(run())
    d.addErrback(lambda f: f.printTraceback())
    d.addBoth(lambda _: reactor.stop())
    try:
        reactor.run()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if drop:
            drop()


if __name__ == "__main__":
    main()
