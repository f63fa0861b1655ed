"""
DNS serving benchmark: Sentinel against dnsmasq, unbound and a naive
twisted.names forwarder, side by side in one run, one server under load at
a time, each pinned to core 1 with dnsperf (and the authoritative upstream,
NSD) on core 0.  Scenarios: cache hits, blocked names (a 200k-name list),
forwarded misses (fresh names every run), and a 70/20/10 mix of them.  Two
references are measured the same way: NSD answering directly on core 1
(what the load generator can reach) and the upstream NSD asked directly on
core 0 (the most any forwarder can reach here, as core 0 runs both dnsperf
and the upstream).  Writes the "dns" section of docs/PERFORMANCE.md;
docs/PERFORMANCE.md explains the method.

    bench/run-dns [--rounds N] [--quick] [--servers sentinel,dnsmasq,...]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time

from bench import dnsservers as S
from bench.dnsperfrun import Files, dnsperf, latency_at, max_rate, profile
from bench.report import write_section

SCENARIOS = ("hits", "blocked", "forwarded", "mix")
SERVERS = ("sentinel", "sentinel-nolog", "dnsmasq", "unbound", "naive", "nsd", "upstream")
OPTIONAL = ("sentinel-any",)
# Variants and references measured for information, on fewer scenarios.
PARTIAL = {"sentinel-any": ("hits", "forwarded"), "sentinel-nolog": ("hits", "forwarded"),
           "nsd": ("hits",), "upstream": ("forwarded",)}
SERVER_CORE, LOAD_CORE = 1, 0
# The upstream answers every name of the benchmark, blocked ones too (with
# LEAKED), so a server that fails to block is caught (check_blocking).
LEAKED = "198.18.0.66"
ZONES = {"hit.test": "198.18.0.1", "fwd.test": "198.18.0.2", "block.test": LEAKED}


def start_server(name, files, upstream, work):
    list_server = None
    if name == "upstream":  # the upstream itself, asked directly
        return upstream
    if name == "nsd":
        return S.start_nsd(work, "nsd-direct", ZONES, SERVER_CORE)
    if name.startswith("sentinel"):
        list_server = S.serve_list(open(files.hosts).read())
        url = f"http://127.0.0.1:{list_server.server_address[1]}/list.txt"
        try:
            proc = S.start_sentinel(work, upstream.port, url, files.blocked_names[0],
                                    SERVER_CORE,
                                    interface="" if name == "sentinel-any" else "127.0.0.1")
        finally:
            list_server.shutdown()
        if name == "sentinel-nolog":
            proc.api("PUT", "/api/filtering/settings", {"query_log_enabled": False})
    elif name == "dnsmasq":
        proc = S.start_dnsmasq(work, upstream.port, files.hosts, SERVER_CORE)
    elif name == "unbound":
        proc = S.start_unbound(work, upstream.port, files.blocked_names, SERVER_CORE)
    else:
        proc = S.start_naive(work, upstream.port, files.blocked_plain, SERVER_CORE)
    try:
        S.wait_dns(proc.port, files.hit_names[0], timeout=300)
        S.wait_dns(proc.port, files.blocked_names[0], timeout=300)
        if name not in ("nsd", "upstream"):
            check_blocking(name, proc.port, files.blocked_names)
        dnsperf(proc.port, files.hits, 3, outstanding=50)  # fill the cache
        dnsperf(proc.port, files.blocked, 3, outstanding=50)
    except Exception:
        proc.stop()
        raise
    return proc


def check_blocking(name, port, blocked, sample=50):
    """Names of the list, first, last and a random sample: blocked, not forwarded."""
    import random

    names = [blocked[0], blocked[-1]] + random.sample(blocked, sample)
    for qname in names:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=3", "+time=2",
                              qname, "A"], capture_output=True, text=True).stdout
        if LEAKED in out or not ("status: NXDOMAIN" in out or "\t0.0.0.0" in out):
            raise RuntimeError(f"{name} does not block {qname}:\n{out}")


def querylog_check(proc, wait=120):
    """
    Every answered query must have its query-log row: wait until the
    buffer is empty, then compare rows stored (+ dropped) with answers.
    """
    deadline = time.monotonic() + wait
    while True:
        m = proc.metrics()
        if not m.get("sentinel_querylog_buffered") or time.monotonic() > deadline:
            break
        time.sleep(1)
    out = {"answers": m.get("sentinel_queries_total", 0),
           "written": m.get("sentinel_querylog_written_total", 0),
           "dropped": m.get("sentinel_querylog_dropped_total", 0),
           "buffered": m.get("sentinel_querylog_buffered", 0),
           "failures": m.get("sentinel_querylog_write_failures_total", 0)}
    print(f"  sentinel query log: {out}", flush=True)
    return out


def measure(name, proc, scenario, files, seconds):
    source = files.source(scenario)
    best = max_rate(proc.port, source, seconds, server=proc)
    half = latency_at(proc.port, source, best["qps"] / 2, server=proc) if best["qps"] else {}
    print(f"  {name:14} {scenario:10} {best['qps']:9.0f} qps (loss {best['lost_pct']:.3f}%, "
          f"errors {best['bad_pct']:.3f}%; cpu {best.get('server_cpu_pct', 0):.0f}% server, "
          f"{best['load_cpu_pct']:.0f}% dnsperf; {best.get('cpu_us_per_answer', 0):.2f} us/answer"
          f"{'; log rows lost %.3f%%' % best['log_dropped_pct'] if 'log_dropped_pct' in best else ''})"
          f"  at half: mean {half.get('mean_ms', 0):.3f} ms p99 {half.get('p99_ms', 0):.3f} ms",
          flush=True)
    return {"max": best, "half": half}


def run_all(servers, files, upstream, work, rounds, seconds, scenarios=SCENARIOS,
            profiles=True):
    """
    Every server is started once (idle ones use no CPU); then, round by
    round and scenario by scenario, each server in turn gets the load, so
    the numbers compared with each other are taken minutes apart at most.
    """
    procs = {}
    try:
        for name in servers:
            procs[name] = start_server(name, files, upstream, work)
        results = [{name: {} for name in servers} for _ in range(rounds)]
        for n in range(rounds):
            print(f"round {n + 1}/{rounds}", flush=True)
            # Every other round in reverse order, so that a slow drift of
            # the machine's speed does not always favour the same server.
            order = servers if n % 2 == 0 else servers[::-1]
            for scenario in scenarios:
                for name in order:
                    if scenario in PARTIAL.get(name, SCENARIOS):
                        results[n][name][scenario] = measure(name, procs[name], scenario,
                                                             files, seconds)
        for name, proc in procs.items():
            results[0][name]["rss_kb"], results[0][name]["peak_rss_kb"] = proc.rss_kb()
            if name == "sentinel":
                results[0][name]["querylog"] = querylog_check(proc)
        if "sentinel" in procs and profiles:
            proc = procs["sentinel"]
            profiles = {}
            for scenario in ("hits", "blocked", "forwarded", "mix"):
                try:  # a profile is extra: a profiler failure must not lose the run
                    profiles[scenario] = profile(proc.pid, proc.port, files.source(scenario))
                except Exception as e:
                    print(f"  py-spy profile of {scenario} failed: {e!r}", flush=True)
            results[0]["sentinel"]["profile"] = profiles
        return results
    finally:
        for proc in procs.values():
            if proc is not upstream:
                proc.stop()


def best_of(rounds):
    """Per server and scenario, the round with the highest max rate."""
    out = {}
    for server in rounds[0]:
        merged = {}
        for scenario in SCENARIOS:
            runs = [r[server][scenario] for r in rounds if scenario in r.get(server, {})]
            if runs:
                merged[scenario] = max(runs, key=lambda r: r["max"]["qps"])
        merged["rss_kb"] = rounds[0][server].get("rss_kb", 0)
        merged["peak_rss_kb"] = rounds[0][server].get("peak_rss_kb", 0)
        if "querylog" in rounds[0][server]:
            merged["querylog"] = rounds[0][server]["querylog"]
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
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--blocked", type=int, default=200_000)
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 round, 5 s runs")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the section from bench/results/dns.json")
    args = parser.parse_args()
    raw = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "dns.json")
    if args.report_only:
        from bench.dnsreport import markdown

        with open(raw) as f:
            saved = json.load(f)
        text = markdown(saved["meta"], saved["results"])
        print(text)
        if not args.no_write:
            write_section("dns", text)
        return
    if args.quick:
        args.rounds, args.seconds = 1, 5
    servers = [s for s in args.servers.split(",") if s]
    work = tempfile.mkdtemp(prefix="sentinel-dnsbench-")
    os.chmod(work, 0o755)  # dnsmasq reads its hosts file as "nobody"
    started = time.time()
    try:
        files = Files(work, args.hits, args.blocked, fresh_count=300_000 * args.seconds)
        upstream = S.start_nsd(work, "upstream", ZONES, LOAD_CORE)
        try:
            rounds = run_all(servers, files, upstream, work, args.rounds, args.seconds,
                             [s for s in args.scenarios.split(",") if s],
                             profiles=not args.no_profile)
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
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw, "w") as f:
        json.dump({"meta": meta, "results": results, "rounds": rounds}, f, indent=1,
                  default=str)
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
