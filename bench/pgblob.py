"""
How long the reactor thread works, in one turn, while the store puts and
gets a 2M-name list blob (13.7 MB) on PostgreSQL: a 1 ms ``LoopingCall``
records the most CPU time the reactor thread spent between two of its
calls (CPU time, so the machine's other load does not count).  txpostgres
quotes parameters and parses results on the reactor thread, so this is
what DNS waits for.

    .venv/bin/python -m bench.pgblob [--tree /path/to/other/checkout] [--rounds 4]

Needs the test PostgreSQL server (tests/support/pg.py: SENTINEL_TEST_PG);
makes a database and drops it.  About 20 s.
"""

import argparse
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", help="measure the checkout at this path instead")
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    if args.tree:
        from bench import use_tree

        use_tree(args.tree)

    from twisted.internet import defer, reactor, task

    from bench.gilstall import make_blob
    from sentinel.dns.service import tune_runtime
    from sentinel.store.store import Store
    from tests.support.pg import create_database

    tune_runtime()
    with open(make_blob(2_000_000), "rb") as f:
        blob = f.read()
    url, drop = create_database()
    worst, last = [0.0], [time.thread_time()]

    def tick():
        now = time.thread_time()
        worst[0] = max(worst[0], now - last[0])
        last[0] = now

    def reset():
        worst[0], last[0] = 0.0, time.thread_time()

    async def measure(work):
        reset()
        t = time.perf_counter()
        result = await work()
        return result, time.perf_counter() - t, worst[0]

    async def run():
        store = Store.from_url(url, reactor)
        await store.start()
        ticker = task.LoopingCall(tick)
        ticker.start(0.001)
        for i in range(args.rounds):
            data = blob + bytes([i])
            _, _, idle = await measure(lambda: task.deferLater(reactor, 0.3, lambda: None))
            sha, put_s, put_w = await measure(lambda: store.put_blob(data))
            got, get_s, get_w = await measure(lambda: store.get_blob(sha))
            assert got == data
            print(f"idle {idle * 1e3:5.1f} ms | put {put_s * 1e3:4.0f} ms, longest reactor "
                  f"turn {put_w * 1e3:5.1f} ms | get {get_s * 1e3:4.0f} ms, longest "
                  f"{get_w * 1e3:5.1f} ms", flush=True)
        ticker.stop()
        await store.stop()

    d = defer.ensureDeferred(run())
    d.addErrback(lambda f: f.printTraceback())
    d.addBoth(lambda _: reactor.stop())
    try:
        reactor.run()
    finally:
        drop()


if __name__ == "__main__":
    main()
