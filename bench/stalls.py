"""
What holds Sentinel's reactor for long: every reactor callback (timed
calls, LoopingCalls, results coming back from threads, socket events other
than the UDP listeners' reads) and every garbage collection that takes more
than ``--threshold`` ms of the DNS process's CPU time, under a paced load
(the p99 latency at half load is made of such stalls).

    .venv/bin/python -m bench.stalls [--scenario hits] [--rate 30000] [--seconds 20]

Starts the upstream (NSD on core 0) and the real ``twistd sentinel`` pinned
to core 1 as L{bench.dnsbench} does, with this module's tracer installed
in the daemon (nothing in Sentinel itself is changed), runs dnsperf at the
given rate and prints the stalls by callback, slowest first, with dnsperf's
mean and p99 latency.  CPU time, not wall time, is measured: what the
machine's other load does is not counted, so this works on a shared
machine.  Nothing is written to docs.
"""

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time

TRACE_ENV = "BENCH_STALLS"


def install(path, threshold, also=()):
    """
    In the daemon: trace callbacks slower than ``threshold`` s to ``path``;
    ``also``: more functions to time, as ``module:Class.method``.
    """
    import gc
    import importlib

    from twisted.internet import base, epollreactor

    out = open(path, "a", buffering=1)
    clock = time.thread_time

    def name_of(f):
        f = getattr(f, "__func__", f)
        owner = getattr(getattr(f, "__self__", None), "__class__", None)
        qual = getattr(f, "__qualname__", None) or repr(f)
        if owner is not None and "." not in qual:
            qual = f"{owner.__name__}.{qual}"
        code = getattr(f, "__code__", None)
        where = f" ({os.path.basename(code.co_filename)}:{code.co_firstlineno})" if code else ""
        return qual + where

    def timed(what, f):
        def call(*a, **kw):
            t0 = clock()
            try:
                return f(*a, **kw)
            finally:
                took = clock() - t0
                if took > threshold:
                    out.write(f"{took * 1000:.3f} {what} {name_of(f)}\n")
        return call

    callLater = base.ReactorBase.callLater
    base.ReactorBase.callLater = lambda self, delay, f, *a, **kw: callLater(
        self, delay, timed("timed", f), *a, **kw)
    callFromThread = base.ReactorBase.callFromThread
    base.ReactorBase.callFromThread = lambda self, f, *a, **kw: callFromThread(
        self, timed("thread", f), *a, **kw)
    doRW = epollreactor.EPollReactor._doReadOrWrite

    def _doReadOrWrite(self, selectable, fd, event):
        t0 = clock()
        try:
            return doRW(self, selectable, fd, event)
        finally:
            took = clock() - t0
            if took > threshold and type(selectable).__name__ != "UdpPort":
                out.write(f"{took * 1000:.3f} io {type(selectable).__qualname__}\n")

    epollreactor.EPollReactor._doReadOrWrite = _doReadOrWrite
    started = {}

    def on_gc(phase, info):
        if phase == "start":
            started["t"] = clock()
        elif "t" in started:
            took = clock() - started.pop("t")
            if took > threshold:
                out.write(f"{took * 1000:.3f} gc generation {info['generation']}\n")

    gc.callbacks.append(on_gc)
    for spec in also:
        module, attr = spec.split(":")
        owner = importlib.import_module(module)
        *path_, name = attr.split(".")
        for part in path_:
            owner = getattr(owner, part)
        setattr(owner, name, timed("call", getattr(owner, name)))


def daemon_main():
    """``python -c 'from bench.stalls import daemon_main; daemon_main()' args``."""
    path, threshold, *also = os.environ[TRACE_ENV].split("|")
    install(path, float(threshold) / 1000, also)
    sys.argv[0] = "twistd"
    from twisted.scripts.twistd import run
    run()


def main():
    from bench import dnsbench as B
    from bench import dnsservers as S
    from bench.dnsperfrun import Files, dnsperf

    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", default="hits")
    parser.add_argument("--rate", type=int, default=30000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.5, help="ms of CPU")
    parser.add_argument("--nolog", action="store_true", help="query log off")
    parser.add_argument("--also", nargs="*", default=[],
                        help="more functions to time, as module:Class.method")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="sentinel-stalls-")
    os.chmod(work, 0o755)
    trace = os.path.join(work, "stalls.txt")
    os.environ[TRACE_ENV] = "|".join([trace, str(args.threshold)] + args.also)
    S.TWISTD[:] = [S.PYTHON, "-c", "from bench.stalls import daemon_main; daemon_main()"]
    try:
        files = Files(work, 5000, 200_000, fresh_count=args.rate * args.seconds + 1000)
        upstream = S.start_nsd(work, "upstream", B.ZONES, B.LOAD_CORE)
        try:
            proc = B.start_server("sentinel-nolog" if args.nolog else "sentinel",
                                  files, upstream, work)
            try:
                open(trace, "w").close()  # what start-up did is not counted
                datafile, fresh = files.source(args.scenario)()
                t0 = time.monotonic()
                run = dnsperf(proc.port, datafile, args.seconds, rate=args.rate,
                              verbose=True, once=fresh, server=proc)
                wall = time.monotonic() - t0
            finally:
                proc.stop()
        finally:
            upstream.stop()
        print(f"{args.scenario} at {args.rate}/s for {args.seconds} s: {run['qps']:.0f} qps, "
              f"mean {run.get('mean_ms', 0):.2f} ms, p50 {run.get('p50_ms', 0):.2f} ms, "
              f"p99 {run.get('p99_ms', 0):.2f} ms, Sentinel CPU "
              f"{run.get('server_cpu_pct', 0):.0f}%")
        by = collections.defaultdict(list)
        for line in open(trace):
            took, rest = line.split(" ", 1)
            by[rest.strip()].append(float(took))
        total = sum(sum(v) for v in by.values())
        print(f"{sum(map(len, by.values()))} stalls over {args.threshold} ms of CPU, "
              f"{total:.0f} ms in all ({100 * total / 1000 / wall:.1f}% of the run):")
        for what, took in sorted(by.items(), key=lambda kv: -max(kv[1])):
            print(f"  {len(took):5d} x  max {max(took):7.2f} ms  sum {sum(took):8.1f} ms  {what}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
