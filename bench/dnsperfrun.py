"""
Running dnsperf for the DNS benchmark: query files, one run, the highest
rate with less than 0.1% loss, latency percentiles at a paced rate, and a
py-spy profile of a server under load.
"""

import collections
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

LOSS_LIMIT = 0.1  # percent
_FLOAT = r"([0-9.]+)"


class Files:
    """
    Query files.  Names that must miss every cache are fresh for every run
    (a new random tag), unique within the file, and dnsperf reads such a
    file at most once (``-n 1``), so no name is ever asked twice in a
    benchmark.  ``fresh_count``: lines per fresh file (a run that reaches
    the end stops early; its rate stays valid).
    """

    def __init__(self, work, hits, blocked, seed=1, fresh_count=3_000_000):
        self.work = work
        self.fresh_count = fresh_count
        self._tag = os.urandom(3).hex()
        self.hit_names = [f"h{i}.hit.test" for i in range(hits)]
        self.blocked_names = [f"t{i}.ads{i % 997}.block.test" for i in range(blocked)]
        self._serial = 0
        self._fresh = []  # fresh query files, the oldest removed as new ones come
        self.hosts = self._write("blocklist.hosts",
                                 (f"0.0.0.0 {n}" for n in self.blocked_names))
        self.blocked_plain = self._write("blocked.names", self.blocked_names)
        import random

        rng = random.Random(seed)
        hits = self.hit_names[:]
        rng.shuffle(hits)
        self.hits = self._write("hits.txt", (f"{n} A" for n in hits))
        blocked = self.blocked_names[:]
        rng.shuffle(blocked)
        self.blocked = self._write("blocked.txt", (f"{n} A" for n in blocked))
        self._mix_pattern = [0] * 7 + [1] * 2 + [2]  # 70% hits, 20% blocked, 10% misses
        rng.shuffle(self._mix_pattern)
        self._blocked_sample = blocked

    def _write(self, name, lines):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _rotate(self, path):
        self._fresh.append(path)
        while len(self._fresh) > 2:
            os.unlink(self._fresh.pop(0))
        return path

    def source(self, scenario):
        """A function returning (query file, fresh) for one run of ``scenario``."""
        return {"hits": lambda: (self.hits, False), "blocked": lambda: (self.blocked, False),
                "forwarded": lambda: (self.fresh_misses(), True),
                "mix": lambda: (self.fresh_mix(), True)}[scenario]

    def _fresh_tag(self):
        self._serial += 1
        return f"r{self._tag}x{self._serial}"

    def fresh_misses(self, count=None):
        count = count or self.fresh_count
        tag = self._fresh_tag()
        return self._rotate(self._write(f"miss{self._serial}.txt",
                                        (f"{tag}m{i}.fwd.test A" for i in range(count))))

    def fresh_mix(self, count=None):
        count = count or self.fresh_count
        tag = self._fresh_tag()
        hits, blocked = self.hit_names, self._blocked_sample
        pattern = self._mix_pattern

        def lines():
            for i in range(count):
                kind = pattern[i % 10]
                if kind == 0:
                    yield f"{hits[i % len(hits)]} A"
                elif kind == 1:
                    yield f"{blocked[i % len(blocked)]} A"
                else:
                    yield f"{tag}m{i}.fwd.test A"

        return self._rotate(self._write(f"mix{self._serial}.txt", lines()))


# The same dnsperf settings for every server: one client socket, one
# thread (dnsperf's sender and receiver threads), 200 queries outstanding,
# a query unanswered after 2 s counts as lost.
CLIENTS, THREADS, OUTSTANDING, TIMEOUT = 1, 1, 200, 2
# Answers that mean the query was handled; anything else (SERVFAIL,
# REFUSED, ...) counts as lost when looking for the max rate.
GOOD_RCODES = ("NOERROR", "NXDOMAIN")


def dnsperf(port, datafile, seconds, rate=None, verbose=False, core=0,
            outstanding=OUTSTANDING, once=False, server=None):
    """
    One dnsperf run.  ``once``: read the query file at most once (files
    of fresh names, so a name is never asked twice); ``server``: a
    L{bench.dnsservers.Process} whose CPU time is measured during the run.
    """
    argv = ["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", datafile, "-l", str(seconds), "-c", str(CLIENTS), "-T", str(THREADS),
            "-q", str(outstanding), "-t", str(TIMEOUT)]
    if once:
        argv += ["-n", "1"]
    if rate:
        argv += ["-Q", str(int(rate))]
    if verbose:
        argv += ["-v"]
    cpu0 = server.cpu_seconds() if server is not None else 0.0
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    wall = time.monotonic() - t0
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "qps": _grab(r"Queries per second:\s+" + _FLOAT, text),
        "sent": _grab(r"Queries sent:\s+(\d+)", text),
        "lost_pct": _grab(r"Queries lost:\s+\d+ \(" + _FLOAT + "%\\)", text),
        "avg_latency_ms": _grab(r"Average Latency \(s\):\s+" + _FLOAT, text) * 1000,
        "elapsed": _grab(r"Run time \(s\):\s+" + _FLOAT, text),
    }
    codes = {}
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        for code, n in re.findall(r"([A-Z]+) (\d+) \(", m.group(1)):
            codes[code] = int(n)
    result["rcodes"] = codes
    answered = sum(codes.values())
    bad = answered - sum(codes.get(c, 0) for c in GOOD_RCODES)
    result["bad_pct"] = 100.0 * bad / result["sent"] if result["sent"] else 0.0
    # CPU used during the run, as a share of one core: who is the bottleneck.
    result["load_cpu_pct"] = 100.0 * ((own1.ru_utime + own1.ru_stime)
                                      - (own0.ru_utime + own0.ru_stime)) / wall
    if server is not None:
        used = server.cpu_seconds() - cpu0
        result["server_cpu_pct"] = 100.0 * used / wall
        result["cpu_us_per_answer"] = 1e6 * used / answered if answered else 0.0
        settle = getattr(server, "settle", None)
        if settle is not None:  # Sentinel: query-log rows lost count as lost queries
            dropped = settle()
            result["log_dropped_pct"] = 100.0 * dropped / result["sent"] if result["sent"] else 0
            # CPU of the log writer catching up after the run belongs to the run
            used = server.cpu_seconds() - cpu0
            result["cpu_us_per_answer"] = 1e6 * used / answered if answered else 0.0
    if verbose:
        lat = sorted(float(m) for m in re.findall(r"^> \S+ .* ([0-9.]+)$", text, re.M))
        result["latencies"] = len(lat)
        if lat:
            result["mean_ms"] = sum(lat) / len(lat) * 1000
            result["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            result["p50_ms"] = lat[len(lat) // 2] * 1000
    return result


def _grab(pattern, text):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def _ok(run):
    lost = run["lost_pct"] + run["bad_pct"] + run.get("log_dropped_pct", 0.0)
    return lost < LOSS_LIMIT and run["qps"] > 0


def max_rate(port, source, seconds=10, tries=8, server=None):
    """
    The highest rate with < 0.1% of queries lost or answered with an error
    (SERVFAIL, REFUSED...), found the same way for every server: a
    saturating run (200 outstanding); if it lost more, paced runs
    (``dnsperf -Q``) from 90% of what it reached, 15% lower each time, down
    to ~30% of it (with 4 steps, down to 55%, a server whose lossless rate
    was lower got 0 instead of its rate: Sentinel's query log, whose
    writer falls behind well before the DNS process saturates).
    ``source()`` gives (query file, fresh): fresh files are read once.
    """
    datafile, fresh = source()
    run = dnsperf(port, datafile, seconds, once=fresh, server=server)
    best = run if _ok(run) else None
    rate = run["qps"] * 0.9
    while best is None and tries > 0 and rate > 100:
        datafile, fresh = source()
        run = dnsperf(port, datafile, seconds, rate=rate, once=fresh, server=server)
        if _ok(run):
            best = run
        rate *= 0.85
        tries -= 1
    return best or dict(run, qps=0.0, note="loss above 0.1% at every rate tried")


def latency_at(port, source, rate, seconds=5, server=None):
    datafile, fresh = source()
    return dnsperf(port, datafile, seconds, rate=rate, verbose=True, once=fresh, server=server)


def profile(pid, port, source, seconds=6, core=0):
    """Top self-time lines of a py-spy profile taken under saturating load."""
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return None
    raw = tempfile.mktemp(suffix=".txt")
    datafile, fresh = source()
    load = subprocess.Popen(["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p",
                             str(port), "-d", datafile, "-l", str(seconds + 2), "-q",
                             str(OUTSTANDING)] + (["-n", "1"] if fresh else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run([spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "250",
                        "-f", "raw", "-o", raw, "--nonblocking"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    finally:
        load.wait(60)
    if not os.path.exists(raw):
        return None
    by_function = collections.Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rpartition(" ")
            try:
                n = int(n)
            except ValueError:  # a frame name with a line break in it: not a sample line
                continue
            total += n
            frame = stack.split(";")[-1]
            by_function[re.sub(r":\d+\)$", ")", frame)] += n
    os.unlink(raw)
    return [(round(100.0 * n / total, 1), f) for f, n in by_function.most_common(8)] \
        if total else None
