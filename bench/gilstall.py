"""
The longest pause a blocklist build imposes on the DNS thread, measured as
the daemon feels it: a thread that wakes every 1 ms records the longest gap
between two wake-ups while another thread decodes a stored list blob
(``decode_blob``), merges it (``merge``) and frees both again, as the
policy engine does.  Any step that holds the GIL shows as a gap.  The
process is tuned like the daemon (1 ms switch interval, its GC thresholds);
the ticker runs at real-time priority where allowed (root), so that the
machine's other load does not delay its wake-ups.

    .venv/bin/python -m bench.gilstall [--names 1000000 2000000] [--against main]

The blob (synthetic names, as in bench.policy) is built once per size and
kept in /tmp.  A run without work (``idle``) gives the machine's own noise.
Also times sha256 of the blob (what storing it costs the thread that does
it).  A few seconds per size and tree.
"""

import argparse
import hashlib
import os
import shutil
import sys
import threading
import time

from bench.trees import run_child, versions

TICK = 0.001


def blob_path(n):
    return os.path.join("/tmp", f"sentinel-gilstall-{n}.blob")


def make_blob(n):
    path = blob_path(n)
    if not os.path.exists(path):
        from bench.policy import domain_names
        from sentinel.filtering.listformat import ParsedList, encode
        from sentinel.filtering.names import to_key

        keys = sorted({to_key(name) for name in domain_names(n)})
        with open(path + ".tmp", "wb") as f:
            f.write(encode(ParsedList(keys, [], 0, ())))
        os.rename(path + ".tmp", path)
    return path


def _realtime():
    """
    Run this (the ticker's) thread with a real-time priority where allowed
    (root): on a busy machine it then wakes on time, and what is left of a
    gap is the GIL (or the worker thread preempted while it holds it).  The
    ticker uses almost no CPU.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError):
        pass


def longest_gap(work):
    """Run work() in a thread; (longest gap between 1 ms wake-ups, seconds of work)."""
    done = threading.Event()
    took = []

    def run():
        t = time.perf_counter()
        try:
            work()
        finally:
            took.append(time.perf_counter() - t)
            done.set()

    worst = 0.0
    _realtime()
    thread = threading.Thread(target=run)
    last = time.perf_counter()
    thread.start()
    while not done.is_set():
        time.sleep(TICK)
        now = time.perf_counter()
        worst = max(worst, now - last - TICK)
        last = now
    thread.join()
    return worst, took[0]


def child(n, rounds):
    import gc

    from sentinel.dns.service import tune_runtime
    from sentinel.filtering import listcache
    from sentinel.filtering.listcache import decode_blob, merge

    release = getattr(listcache, "release", None)

    tune_runtime()  # the daemon's switch interval (1 ms) and GC thresholds

    with open(blob_path(n), "rb") as f:
        blob = f.read()
    sha = hashlib.sha256(blob).hexdigest()
    key = ((1, sha),)
    gc.collect()
    out = {k: [] for k in ("idle", "decode", "merge", "free", "decode_s", "merge_s",
                           "sha256_ms")}

    def one_round():
        decoded, merged = {}, []
        gap, took = longest_gap(lambda: decoded.update({sha: decode_blob(blob)}))
        out["decode"].append(gap)
        out["decode_s"].append(took)
        gap, took = longest_gap(lambda: merged.append(merge(key, decoded)))
        out["merge"].append(gap)
        out["merge_s"].append(took)
        # Contents no longer used are freed (main: by the reactor thread, in
        # the engine's retain(); since sharding: listcache.release in a thread).
        dropped = [merged.pop(), decoded.pop(sha)]
        if release is None:
            gap, _ = longest_gap(dropped.clear)
        else:
            gap, _ = longest_gap(lambda: release(dropped))
        out["free"].append(gap)

    for _ in range(rounds):
        out["idle"].append(longest_gap(lambda: time.sleep(0.5))[0])
        one_round()
        t = time.perf_counter()
        hashlib.sha256(blob).hexdigest()
        out["sha256_ms"].append((time.perf_counter() - t) * 1e3)
    print(__import__("json").dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--names", type=int, nargs="+", default=[1_000_000, 2_000_000])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--against", metavar="REF", help="also measure git ref REF (e.g. main)")
    p.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        child(args.n, args.rounds)
        return
    trees, tmp = versions(args.against)
    try:
        for n in args.names:
            make_blob(n)
            print(f"{n:,} names (blob {os.path.getsize(blob_path(n)) / 1e6:.1f} MB): longest "
                  f"gap of a 1 ms ticker per round, ms, min / median / max of {args.rounds} "
                  f"rounds (a real stall shows in every round, the machine's noise in some)")
            for label, tree in trees.items():
                r = run_child("bench.gilstall", tree, ["--n", str(n), "--rounds",
                                                       str(args.rounds)])

                def ms(k):
                    v = sorted(x * 1e3 for x in r[k])
                    return f"{v[0]:5.1f} / {v[len(v) // 2]:5.1f} / {v[-1]:5.1f}"

                print(f"  {label:10} idle {ms('idle')}  decode {ms('decode')} "
                      f"({min(r['decode_s']):.2f} s)  merge {ms('merge')} "
                      f"({min(r['merge_s']):.2f} s)  free {ms('free')}  "
                      f"sha256 {min(r['sha256_ms']):.1f} ms")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
