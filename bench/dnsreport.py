"""The DNS benchmark's section of docs/PERFORMANCE.md, from its results."""

NAMES = {
    "sentinel": "Sentinel (127.0.0.1)",
    "sentinel-nolog": "Sentinel, query log off",
    "sentinel-any": "Sentinel (all addresses, pktinfo)",
    "dnsmasq": "dnsmasq (addn-hosts, cache 10000)",
    "unbound": "unbound (1 thread, local-zone)",
    "naive": "naive twisted.names forwarder",
    "nsd": "*reference:* NSD answering itself on core 1 (load-generator ceiling)",
    "upstream": "*reference:* the upstream NSD asked directly (forwarding ceiling)",
}
TITLES = {"hits": "cache hits", "blocked": "blocked", "forwarded": "forwarded misses",
          "mix": "70/20/10 mix"}
TARGETS = [
    ("hits", "dnsmasq", 0.8, "cache hits ≥ 0.8 × dnsmasq"),
    ("blocked", "dnsmasq", 0.8, "blocked ≥ 0.8 × dnsmasq"),
    ("forwarded", "unbound", 1.5, "forwarded ≥ 1.5 × unbound"),
    ("forwarded", "naive", 10.0, "forwarded ≥ 10 × naive twisted.names"),
    ("mix", "unbound", 0.7, "mix ≥ 0.7 × unbound"),
]


def _qps(results, server, scenario):
    return results.get(server, {}).get(scenario, {}).get("max", {}).get("qps", 0.0)


def _round_ratios(results, server, scenario, other):
    ours = results.get(server, {}).get("all_rounds", {}).get(scenario, [])
    theirs = results.get(other, {}).get("all_rounds", {}).get(scenario, [])
    return [a / b for a, b in zip(ours, theirs) if a and b]


def _median(values):
    """The median (of two rounds: their mean, not the better one)."""
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def markdown(meta, results):
    servers = [s for s in NAMES if s in results]
    out = [
        f"Measured {meta['date']} with `bench/run-dns` ({meta['minutes']} min): {meta['cpu']}, "
        f"{meta['cores']} cores, Python {meta['python']}. Every server runs pinned to core 1, "
        "one under load at a time, taking turns scenario by scenario (so compared numbers "
        "are minutes apart at most); dnsperf and the authoritative upstream (NSD, one "
        "process, wildcard zones, TTL 3600, rate limiting off) on core 0. Best of "
        f"{meta['rounds']} round(s) of {meta['seconds']} s runs; the machine is shared with "
        "other work, so only ratios within this run mean anything.",
        "",
        f"Blocklist: {meta['blocked']:,} names (Sentinel: downloaded through its API; dnsmasq: "
        "addn-hosts; unbound: local-zone always_nxdomain; naive: a set); every server is "
        "checked to block before it is measured. Cache hits: "
        f"{meta['hits']:,} names, queried after one warm-up pass. Forwarded misses: names "
        "never asked before (fresh for every run, each file read once). Mix: 70% hits, 20% "
        "blocked, 10% misses. Sentinel runs as `twistd sentinel` with its query log on: every "
        "query is recorded, spooled to a file and stored in SQLite by the query-log writer, a "
        "child process at idle priority (nice 19, SCHED_IDLE) on Sentinel's core. Its CPU is counted as "
        "Sentinel's, also when it catches up after a run (the next run starts only when "
        "every row is stored), and a row that was dropped counts as a lost query.",
        "",
        "Max QPS is the highest rate with < 0.1% lost queries or error answers (a saturating "
        "run with 200 queries outstanding; if it lost more, paced runs 15% lower each time, "
        "down to ~30% of the saturating rate); latency is measured "
        "at half that rate, paced (`dnsperf -Q`), from every answer of a 5 s run. The two "
        "*reference* rows are not DNS filters: NSD answering from its zone on core 1 shows "
        "what dnsperf can generate and receive here; the upstream asked directly shows the "
        "most any forwarder can get from it.",
        "",
        "Highest max QPS of all rounds (per-round values are in the ratios below):",
        "",
        "| server | " + " | ".join(TITLES[s] for s in TITLES) + " | RSS after (peak) |",
        "| --- | " + " | ".join("---:" for _ in TITLES) + " | ---: |",
    ]
    for server in servers:
        r = results[server]
        cells = []
        for scenario in TITLES:
            qps = _qps(results, server, scenario)
            cells.append(f"{qps / 1000:.1f}k" if qps else "–")
        rss = f"{r.get('rss_kb', 0) / 1024:.0f} MB ({r.get('peak_rss_kb', 0) / 1024:.0f} MB)"
        out.append(f"| {NAMES[server]} | " + " | ".join(cells) + f" | {rss} |")
    out += ["", "CPU per answer at the max rate, in µs (the server's process and its children), "
            "and the CPU used during that run as a share of one core, server / dnsperf "
            "(a server well below 100% was not the bottleneck of that run: dnsperf or the "
            "machine's other load was):", "",
            "| server | " + " | ".join(TITLES[s] for s in TITLES) + " |",
            "| --- | " + " | ".join("---:" for _ in TITLES) + " |"]
    for server in servers:
        cells = []
        for scenario in TITLES:
            best = results[server].get(scenario, {}).get("max", {})
            if best.get("qps"):
                cells.append(f"{best.get('cpu_us_per_answer', 0):.1f} "
                             f"({best.get('server_cpu_pct', 0):.0f}% / "
                             f"{best.get('load_cpu_pct', 0):.0f}%)")
            else:
                cells.append("–")
        out.append(f"| {NAMES[server]} | " + " | ".join(cells) + " |")
    out += ["", "Latency at half of max load, mean / p99 (ms):", "",
            "| server | " + " | ".join(TITLES[s] for s in TITLES) + " |",
            "| --- | " + " | ".join("---:" for _ in TITLES) + " |"]
    for server in servers:
        cells = []
        for scenario in TITLES:
            half = results[server].get(scenario, {}).get("half", {})
            cells.append(f"{half['mean_ms']:.2f} / {half['p99_ms']:.2f}"
                         if half.get("p99_ms") is not None and "mean_ms" in half else "–")
        out.append(f"| {NAMES[server]} | " + " | ".join(cells) + " |")
    out += ["", "Targets. On this shared machine the speed changes from one minute to the next, so "
            "each ratio is taken within one round (the two servers measured minutes apart) "
            "and the median over rounds is reported (of two rounds: their mean), with every round's ratio (rows marked "
            "*query log off* are for information: the targets ask for logging on):", "",
            "| target | median ratio (per round) | met |", "| --- | ---: | --- |"]
    rows = [("sentinel",) + t for t in TARGETS]
    rows += [("sentinel-nolog", sc, other, want, text + ", *query log off*")
             for sc, other, want, text in TARGETS if sc in ("hits", "forwarded")]
    for ours, scenario, other, want, text in rows:
        ratios = _round_ratios(results, ours, scenario, other)
        if ratios:
            median = _median(ratios)
            each = ", ".join(f"{r:.2f}" for r in ratios)
            out.append(f"| {text} | {median:.2f} ({each}) | {'yes' if median >= want else 'no'} |")
    for scenario in TITLES:
        half = results.get("sentinel", {}).get(scenario, {}).get("half", {})
        if "p99_ms" in half:
            ok = "yes" if half["p99_ms"] <= 2.0 else "no"
            others = [f"{other} {results[other][scenario]['half']['p99_ms']:.2f}"
                      for other in ("dnsmasq", "unbound")
                      if "p99_ms" in results.get(other, {}).get(scenario, {}).get("half", {})]
            also = f" ({', '.join(others)})" if others else ""
            out.append(f"| p99 ≤ 2 ms at half load, {TITLES[scenario]} (the round of the "
                       f"highest max QPS, for each server) | {half['p99_ms']:.2f} ms{also} "
                       f"| {ok} |")
    prof = results.get("sentinel", {}).get("profile") or {}
    for scenario, rows in prof.items():
        if rows:
            out += ["", f"py-spy, Sentinel saturated with {TITLES[scenario]} "
                        "(share of samples, by function):", ""]
            out += [f"- {share}% `{frame}`" for share, frame in rows]
    return "\n".join(out)
