"""
Running dnsperf for the DNS benchmark: query files, one run, the highest
rate with less than 0.1% loss, latency percentiles at a paced rate, and a
py-spy profile of a server under load.
"""

import collections
import os
import re
import subprocess
import sys
import tempfile

LOSS_LIMIT = 0.1  # percent
_FLOAT = r"([0-9.]+)"


class Files:
    """Query files; names that must miss a cache are fresh for every run."""

    def __init__(self, work, hits, blocked, seed=1):
        self.work = work
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

    def fresh_misses(self, count=2_000_000):
        self._serial += 1
        tag = f"r{os.getpid()}x{self._serial}"
        return self._rotate(self._write(f"miss{self._serial}.txt",
                                        (f"{tag}m{i}.fwd.test A" for i in range(count))))

    def fresh_mix(self, count=2_000_000):
        self._serial += 1
        tag = f"r{os.getpid()}x{self._serial}"
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


def dnsperf(port, datafile, seconds, rate=None, verbose=False, core=0, outstanding=200):
    argv = ["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", datafile, "-l", str(seconds), "-q", str(outstanding), "-t", "2"]
    if rate:
        argv += ["-Q", str(int(rate))]
    if verbose:
        argv += ["-v"]
    with tempfile.TemporaryFile() as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 60)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    result = {
        "qps": _grab(r"Queries per second:\s+" + _FLOAT, text),
        "sent": _grab(r"Queries sent:\s+(\d+)", text),
        "lost_pct": _grab(r"Queries lost:\s+\d+ \(" + _FLOAT + "%\\)", text),
        "avg_latency_ms": _grab(r"Average Latency \(s\):\s+" + _FLOAT, text) * 1000,
    }
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


def max_rate(port, datafile, seconds=10, tries=4):
    """The highest rate with < 0.1% loss: saturate, then back off if lossy."""
    run = dnsperf(port, datafile(), seconds)
    best = run if run["lost_pct"] < LOSS_LIMIT else None
    rate = run["qps"] * 0.9
    while best is None and tries > 0 and rate > 100:
        run = dnsperf(port, datafile(), seconds, rate=rate)
        if run["lost_pct"] < LOSS_LIMIT:
            best = run
        rate *= 0.85
        tries -= 1
    return best or dict(run, qps=0.0, note="loss above 0.1% at every rate tried")


def latency_at(port, datafile, rate, seconds=5):
    return dnsperf(port, datafile(), seconds, rate=rate, verbose=True)


def profile(pid, port, datafile, seconds=6, core=0):
    """Top self-time lines of a py-spy profile taken under saturating load."""
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return None
    raw = tempfile.mktemp(suffix=".txt")
    load = subprocess.Popen(["taskset", "-c", str(core), "dnsperf", "-s", "127.0.0.1", "-p",
                             str(port), "-d", datafile(), "-l", str(seconds + 2), "-q", "200"],
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
            n = int(n)
            total += n
            frame = stack.split(";")[-1]
            by_function[re.sub(r":\d+\)$", ")", frame)] += n
    os.unlink(raw)
    return [(round(100.0 * n / total, 1), f) for f, n in by_function.most_common(8)] \
        if total else None
