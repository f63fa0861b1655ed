"""
Where Sentinel's CPU per answer goes with the query log on: the DNS process
itself against the query-log writer child, measured separately (the DNS
benchmark counts them together).

    .venv/bin/python -m bench.cpusplit [--scenarios hits,blocked,forwarded] [--runs 3]

Starts the upstream (NSD on core 0) and the real ``twistd sentinel`` pinned
to core 1 as L{bench.dnsbench} does, with and without its query log (the
"sentinel" and "sentinel-nolog" servers), then runs saturating dnsperf
loads (200 queries outstanding, 8 s) and reads the CPU time of each
process from /proc before the run and after the writer has stored every
row.  Prints µs of CPU per answered query per process; nothing is written
to docs (the numbers are quoted in docs/PERFORMANCE.md, "DNS serving").
"""

import argparse
import os
import shutil
import tempfile

from bench import dnsbench as B
from bench import dnsservers as S
from bench.dnsperfrun import Files, dnsperf


def processes(pid):
    """The DNS process and its children (the query-log writer), by pid."""
    return {p: ("dns" if p == pid else "writer") for p in S._tree(pid)}


def measure(proc, source, seconds):
    datafile, fresh = source()
    who = processes(proc.pid)
    before = {p: S._cpu_of(p) for p in who}
    run = dnsperf(proc.port, datafile, seconds, once=fresh, server=proc)
    answered = sum(run["rcodes"].values()) or 1
    out = {"qps": run["qps"]}
    for p, role in who.items():
        out[role] = out.get(role, 0.0) + 1e6 * (S._cpu_of(p) - before[p]) / answered
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", default="hits,blocked,forwarded")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    work = tempfile.mkdtemp(prefix="sentinel-cpusplit-")
    os.chmod(work, 0o755)
    try:
        files = Files(work, 5000, 200_000, fresh_count=300_000 * args.seconds)
        upstream = S.start_nsd(work, "upstream", B.ZONES, B.LOAD_CORE)
        try:
            servers = {name: B.start_server(name, files, upstream, work)
                       for name in ("sentinel", "sentinel-nolog")}
            try:
                print("| scenario | server | run | qps | DNS process µs | writer µs |")
                print("| --- | --- | ---: | ---: | ---: | ---: |")
                for scenario in scenarios:
                    for n in range(args.runs):  # taking turns, minutes apart at most
                        for name, proc in servers.items():
                            if name == "sentinel-nolog" and scenario == "blocked":
                                continue
                            r = measure(proc, files.source(scenario), args.seconds)
                            print(f"| {scenario} | {name} | {n + 1} | {r['qps']:.0f} | "
                                  f"{r['dns']:.2f} | {r.get('writer', 0.0):.2f} |",
                                  flush=True)
            finally:
                for proc in servers.values():
                    proc.stop()
        finally:
            upstream.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
