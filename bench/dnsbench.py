"""
DNS serving benchmark: Sentinel against dnsmasq, unbound and a naive
twisted.names forwarder, side by side in one run, one server at a time,
each pinned to core 1 with dnsperf (and the authoritative upstream) on
core 0.  Scenarios: cache hits, blocked names (a 200k-name list), forwarded
misses (fresh names every run), and a 70/20/10 mix of them.  Writes the
"dns" section of docs/PERFORMANCE.md.

    bench/run-dns [--rounds N] [--quick] [--servers sentinel,dnsmasq,...]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time

from bench import dnsservers as S
from bench.dnsperfrun import Files, latency_at, max_rate, profile
from bench.report import write_section

SCENARIOS = ("hits", "blocked", "forwarded", "mix")
SERVERS = ("sentinel", "sentinel-nolog", "sentinel-any", "dnsmasq", "unbound", "naive")
# Variants measured for information, on fewer scenarios.
PARTIAL = {"sentinel-any": ("hits", "forwarded"), "sentinel-nolog": ("hits", "forwarded")}
SERVER_CORE, LOAD_CORE = 1, 0


def run_server(name, files, upstream, work, seconds, profile_it):
    list_server = None
    if name.startswith("sentinel"):
        list_server = S.serve_list(open(files.hosts).read())
        url = f"http://127.0.0.1:{list_server.server_address[1]}/list.txt"
        proc = S.start_sentinel(work, upstream.port, url, files.blocked_names[0], SERVER_CORE,
                                interface="" if name == "sentinel-any" else "127.0.0.1")
        if name == "sentinel-nolog":
            proc.api("PUT", "/api/filtering/settings", {"query_log_enabled": False})
    elif name == "dnsmasq":
        proc = S.start_dnsmasq(work, upstream.port, files.hosts, SERVER_CORE)
    elif name == "unbound":
        proc = S.start_unbound(work, upstream.port, files.blocked_names, SERVER_CORE)
    else:
        proc = S.start_naive(work, upstream.port, files.blocked_plain, SERVER_CORE)
    results = {}
    try:
        S.wait_dns(proc.port, files.hit_names[0], timeout=300)
        S.wait_dns(proc.port, files.blocked_names[0], timeout=300)
        from bench.dnsperfrun import dnsperf

        dnsperf(proc.port, files.hits, 3, outstanding=50)  # fill the cache
        dnsperf(proc.port, files.blocked, 3, outstanding=50)
        sources = {"hits": lambda: files.hits, "blocked": lambda: files.blocked,
                   "forwarded": files.fresh_misses, "mix": files.fresh_mix}
        scenarios = PARTIAL.get(name, SCENARIOS)
        for scenario in scenarios:
            source = sources[scenario]
            best = max_rate(proc.port, source, seconds)
            half = latency_at(proc.port, source, best["qps"] / 2) if best["qps"] else {}
            results[scenario] = {"max": best, "half": half}
            print(f"  {name:13} {scenario:10} {best['qps']:9.0f} qps "
                  f"(loss {best['lost_pct']:.3f}%)  at half: mean "
                  f"{half.get('mean_ms', 0):.3f} ms p99 {half.get('p99_ms', 0):.3f} ms",
                  flush=True)
        results["rss_kb"], results["peak_rss_kb"] = proc.rss_kb()
        if profile_it and name == "sentinel":
            results["profile"] = {
                "hits": profile(proc.pid, proc.port, lambda: files.hits),
                "forwarded": profile(proc.pid, proc.port, files.fresh_misses),
            }
    finally:
        proc.stop()
        if list_server is not None:
            list_server.shutdown()
    return results


def best_of(rounds):
    """Per server and scenario, the round with the highest max rate."""
    out = {}
    for server in rounds[0]:
        merged = {}
        for scenario in SCENARIOS:
            runs = [r[server][scenario] for r in rounds if scenario in r.get(server, {})]
            if runs:
                merged[scenario] = max(runs, key=lambda r: r["max"]["qps"])
        merged["rss_kb"] = max(r[server].get("rss_kb", 0) for r in rounds if server in r)
        merged["peak_rss_kb"] = max(r[server].get("peak_rss_kb", 0) for r in rounds
                                    if server in r)
        for r in rounds:
            if r.get(server, {}).get("profile"):
                merged["profile"] = r[server]["profile"]
        merged["all_rounds"] = {sc: [r[server][sc]["max"]["qps"] for r in rounds
                                     if sc in r.get(server, {})] for sc in SCENARIOS}
        out[server] = merged
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--blocked", type=int, default=200_000)
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 round, 5 s runs")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 5
    servers = [s for s in args.servers.split(",") if s]
    work = tempfile.mkdtemp(prefix="sentinel-dnsbench-")
    started = time.time()
    try:
        files = Files(work, args.hits, args.blocked)
        upstream = S.start_upstream(work, {"hit.test": "198.18.0.1", "fwd.test": "198.18.0.2"},
                                    LOAD_CORE)
        rounds = []
        try:
            for n in range(args.rounds):
                print(f"round {n + 1}/{args.rounds}", flush=True)
                rounds.append({s: run_server(s, files, upstream, work, args.seconds,
                                             profile_it=(n == 0)) for s in servers})
        finally:
            upstream.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = best_of(rounds)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(), "cores": os.cpu_count(), "rounds": args.rounds,
        "seconds": args.seconds, "blocked": args.blocked, "hits": args.hits,
        "minutes": round((time.time() - started) / 60, 1), "python": platform.python_version(),
    }
    raw = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dns.json")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
    from bench.dnsreport import markdown

    text = markdown(meta, results)
    print(text)
    if not args.no_write:
        write_section("dns", text)


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
