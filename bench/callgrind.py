"""
Instructions per blocked query in ``FastPath.handle``, counted by valgrind's
callgrind: unlike timings on a shared machine, counts do not vary from run
to run, so a change of a few percent shows (they do not show memory stalls:
confirm with ``bench.hotpath``).

    .venv/bin/python -m bench.callgrind [--against main] [--repeated]

The engine is the one of L{bench.hotpath} with a smaller list (30,000
blocked names ``t{i}.ads{i % 997}.block.test``, shuffled); 20,000 of them
are asked first, so the memos are full as in a long run, then 10,000 names
never asked before are counted (``--repeated``: 10,000 queries cycling
through 100 names asked before).  Only the loop is counted (callgrind
collects inside ``sum()``).  About 1 min per tree.

``--passed`` counts the policy alone (``Policy.decide``, no DNS around it)
for 10,000 names never asked before that no list holds
(``www{i}.site{i % 991}.example.org``: the name and its three parents are
looked up), after 10,000 others.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys

from bench.trees import REPO, versions

LISTED = 30_000
COUNTED = 10_000


def child(repeated):
    import gc
    import time

    from twisted.internet.task import Clock

    from bench.hotpath import Port, merged_lists, query, wire_name
    from sentinel.dns.decision import PolicySource
    from sentinel.dns.engine import Engine
    from sentinel.dns.fastpath import FastPath
    from sentinel.dns.stats import DnsStats
    from sentinel.filtering.policy import Policy, Profile, name_hash
    from sentinel.filtering.querylog import QueryLog

    names = [f"t{i}.ads{i % 997}.block.test" for i in range(LISTED)]
    listed = {name_hash(wire_name(n)[:-1]): 1 for n in names}
    policy = Policy(Profile(lists=merged_lists(listed)))
    log = QueryLog()
    log.enabled = False
    clock = Clock()
    clock.seconds = time.time
    engine = Engine(clock, PolicySource(policy), log, stats=DnsStats())
    handle = FastPath(engine).handle
    port, client = Port(), ("127.0.0.1", 40000)
    random.Random(2).shuffle(names)
    rng = random.Random(1)
    wires = [query(rng.randrange(65536), n) for n in names]
    for w in wires[:LISTED - COUNTED]:
        handle(w, client, port, None)
    counted = [wires[i % 100] for i in range(COUNTED)] if repeated else wires[-COUNTED:]
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)
    assert sum(1 for w in counted if handle(w, client, port, None) is None) == COUNTED
    assert engine.stats.rcodes[3] == LISTED, engine.stats.rcodes  # all NXDOMAIN


def child_passed():
    import gc

    from bench.hotpath import merged_lists, wire_name
    from sentinel.filtering.policy import Policy, Profile, name_hash

    names = [f"t{i}.ads{i % 997}.block.test" for i in range(LISTED)]
    policy = Policy(Profile(lists=merged_lists({name_hash(wire_name(n)[:-1]): 1
                                                for n in names})))
    passed = [wire_name(f"www{i}.site{i % 991}.example.org") for i in range(2 * COUNTED)]
    decide = policy.decide
    for qname in passed[:COUNTED]:
        decide("127.0.0.1", qname, 1)
    gc.collect()
    gc.freeze()
    counted = passed[COUNTED:]
    assert sum(1 for q in counted if decide("127.0.0.1", q, 1).action == 0) == COUNTED


def count(tree, mode):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         "--collect-atstart=no", "--toggle-collect=builtin_sum", sys.executable, "-m",
         "bench.callgrind", "--child", tree] + ([f"--{mode}"] if mode != "new" else []),
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONHASHSEED="0"))
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split()[-1]) / COUNTED
    sys.exit(f"callgrind failed for {tree}:\n{out.stderr[-2000:]}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", metavar="REF", help="also count git ref REF (e.g. main)")
    p.add_argument("--repeated", action="store_true", help="names asked before, not new ones")
    p.add_argument("--passed", action="store_true",
                   help="the policy alone, new names no list holds")
    p.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, args.child)
        child_passed() if args.passed else child(args.repeated)
        return
    mode = "passed" if args.passed else "repeated" if args.repeated else "new"
    trees, tmp = versions(args.against)
    try:
        got = {label: count(tree, mode) for label, tree in trees.items()}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    what = {"new": "blocked query, new names", "repeated": "blocked query, repeated names",
            "passed": "decision, new names not listed"}[mode]
    print(f"instructions per {what}: " + ", ".join(
        f"{label} {v:,.0f}" for label, v in got.items()))


if __name__ == "__main__":
    main()
