"""
Query-log writer micro-benchmark: the CPU it costs to store one row, end
to end, in-process.

    .venv/bin/python -m bench.logrow [--against main] [--rounds 6] [-n 200000]

Rows are made the way the DNS path records them (``QueryLog.record``:
``ts`` a float from ``time.time``, the client address as text, the name
in lowercase wire format, ...), then go through what happens to them in
production: ``encode`` (the DNS process, one body per 2000-row frame),
the spool file (``pwrite``, then ``pread`` by the writer), and the
writer's own loop, ``serve`` (frame reading, ``marshal.loads``,
``normalise``, one transaction of up to 20 000 rows per group of waiting
frames) into ``SqliteSink``, on a SQLite database created with the real
migrations of the tree measured and already holding 1,000,000 rows (the
default ``query_log_max_rows``).  Two scenarios:

- ``distinct``: 200,000 rows, every name different (the DNS benchmark's
  blocked scenario: a 200,000-name blocklist read in a cycle; the
  writer's name cache never has the name), decision ``blocked``;
- ``repeat``: 200,000 rows over 5,000 names (the writer's name cache has
  them: 90% ``cached``, 10% ``forwarded`` with an upstream and a duration).

Reported per row, in µs of process CPU time (user + system,
``time.process_time``): ``encode`` (DNS process, for information),
``writer`` (all of ``serve``), split into ``sink`` (``SqliteSink.write``:
insert + commit) and ``frames`` (the rest: reading the spool, unmarshalling,
normalising).  Best of the rounds (the machine is shared).  With
``--against REF`` the ``sentinel`` package of git ref REF is extracted to
a temporary folder and both trees are measured in child processes, taking
turns round by round.  The rows each tree stored in the first round are
compared (a digest of every stored column): both must store the same.
"""

import argparse
import gc
import hashlib
import io
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from itertools import accumulate

from bench.trees import run_child as run_in_tree, versions

PREFILL = 1_000_000
FRAME_ROWS = 2000
SCENARIOS = ("distinct", "repeat")
COLUMNS = ("ts", "client_ip", "client_name", "qname", "qtype", "decision", "reason",
           "upstream", "rcode", "duration_ms")


def wire(name):
    return b"".join(bytes([len(p)]) + p for p in name.encode().split(b".")) + b"\x00"


def make_rows(scenario, n, seed):
    rng = random.Random(seed)
    clients = ["192.168.1.%d" % i for i in range(2, 40)] + ["127.0.0.1", "fd00::1:2"]
    ips = rng.choices(clients, k=n)
    ts = list(accumulate((rng.random() * 4e-5 for _ in range(n)),  # ~50k rows/s
                         initial=1_800_000_000.0 + seed * 1000))[1:]
    rows = []
    if scenario == "distinct":
        tails = [wire(f"tracker{j}.example{j % 13}.com") for j in range(977)]
        names = [b"%c%s" % (len(b"ad%d" % i), b"ad%d" % i) + tails[i % 977] for i in range(n)]
        rng.shuffle(names)
        for t, ip, name in zip(ts, ips, names):
            rows.append((t, ip, "", name, 1, "blocked", "blocklist:1", "", 3, 0.0))
    else:
        names = [wire(f"www.site{i}.example.org") for i in range(5000)]
        for i, (t, ip) in enumerate(zip(ts, ips)):
            if i % 10:
                rows.append((t, ip, "tv", names[i % 5000], 1, "cached", "", "", 0, 0.0))
            else:
                rows.append((t, ip, "", names[i % 5000], 28, "forwarded", "",
                             "udp://198.18.0.1:53", 0, rng.random() * 30))
    return rows


def create_database(path):
    """A fresh database with the tree's own migrations, and PREFILL rows."""
    from sentinel.store import migrations

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for version, name, statements in migrations.available_migrations("sqlite"):
        conn.execute("BEGIN")
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '')", (version, name))
        conn.execute("COMMIT")
    conn.execute(
        "INSERT INTO query_log (%s) WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 "
        "FROM c LIMIT %d) SELECT 1799990000.0 + i * 0.005, '192.168.1.' || (i %% 37 + 2), '', "
        "'old' || (i %% 50000) || '.example.net', 1, 'cached', '', '', 0, 0.0 FROM c"
        % (", ".join(COLUMNS), PREFILL))
    conn.close()


class Stdin(io.BytesIO):
    """The writer's stdin with every frame already waiting (as in a backlog)."""

    def ready(self):
        return self.tell() < len(self.getbuffer())


class TimedSink:
    def __init__(self, sink):
        self.sink = sink
        self.cpu = 0.0
        self.rows = 0

    def write(self, rows, *args):
        t = time.process_time()
        self.sink.write(rows, *args)
        self.cpu += time.process_time() - t
        self.rows += len(rows) if not args else sum(len(r) for _, r in rows)


def measure(lw, url, spool_path, rows):
    """{phase: µs per row} for storing rows through the tree's writer."""
    try:
        from sentinel.store import spoolfile
    except ImportError:  # a tree from before numbered spool records
        spoolfile = None
    frames = [rows[i:i + FRAME_ROWS] for i in range(0, len(rows), FRAME_ROWS)]
    t = time.process_time()
    bodies = [lw.encode(f)[0] for f in frames]
    encode = time.process_time() - t
    fd = os.open(spool_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        refs, offset = [], 0
        if spoolfile is not None:  # numbered records after a header (the tree has them)
            offset = os.pwrite(fd, spoolfile.new_header()[0], 0)
        for number, body in enumerate(bodies, 1):
            if spoolfile is not None:
                body = spoolfile.record_head(number, body) + body
            os.pwrite(fd, body, offset)
            refs.append(lw.frame(b"@" + lw.REF.pack(offset, len(body))))
            offset += len(body)
        stdin, stdout = Stdin(b"".join(refs)), io.BytesIO()
        sink = TimedSink(lw.open_sink(url))
        t = time.process_time()
        lw.serve(stdin, stdout, sink, spool=fd)
        writer = time.process_time() - t
    finally:
        os.close(fd)
    answers = stdout.getvalue().split()
    assert sink.rows == len(rows) and answers.count(b"ok") == len(frames), answers[:6]
    n = len(rows)
    return {"encode": encode / n * 1e6, "writer": writer / n * 1e6,
            "sink": sink.cpu / n * 1e6, "frames": (writer - sink.cpu) / n * 1e6}


def digest(path, since_ts):
    """A digest of every column of the rows stored by the benchmark."""
    conn = sqlite3.connect(path)
    h = hashlib.sha256()
    for row in conn.execute("SELECT %s FROM query_log WHERE ts >= ? ORDER BY id"
                            % ", ".join(COLUMNS), (since_ts,)):
        h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()[:16]


def child(n, seed, template):
    import sentinel.store.logwriter as lw

    if not os.path.exists(template):
        create_database(template)
        return {}
    gc.disable()  # as the writer process does (logwriter.main)
    tmp = tempfile.mkdtemp(prefix="logrow-")
    try:
        path = os.path.join(tmp, "sentinel.db")
        shutil.copyfile(template, path)
        out = {}
        for k, scenario in enumerate(SCENARIOS):
            rows = make_rows(scenario, n, seed * 10 + k)
            for phase, v in measure(lw, "sqlite://" + path, os.path.join(tmp, "spool"),
                                    rows).items():
                out[f"{scenario}.{phase}"] = v
        if seed == 1:
            out["digest"] = digest(path, 1_800_000_000.0)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_child(tree, n, seed, template):
    return run_in_tree("bench.logrow", tree, ["-n", str(n), "--seed", str(seed),
                                                  "--template", template])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", metavar="REF", help="also measure git ref REF (e.g. main)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per tree (best kept)")
    p.add_argument("-n", type=int, default=200_000, help="rows per scenario")
    p.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--template", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        sys.path.insert(0, args.child)  # its sentinel package, before this checkout's
        print(json.dumps(child(args.n, args.seed, args.template)))
        return
    trees, tmp = versions(args.against, "logrow-tree-")
    best = {label: {} for label in trees}
    digests = {}
    started = time.time()
    work = tempfile.mkdtemp(prefix="logrow-db-")
    templates = {label: os.path.join(work, f"template{i}.db") for i, label in enumerate(trees)}
    try:
        for label, tree in trees.items():  # each tree's schema, prefilled, copied every round
            run_child(tree, args.n, 0, templates[label])
        for r in range(args.rounds):  # take turns, so a noisy minute hits both trees
            for label, tree in trees.items():
                got = run_child(tree, args.n, r + 1, templates[label])
                if "digest" in got:
                    digests.setdefault(r, set()).add(got.pop("digest"))
                for k, v in got.items():
                    best[label][k] = min(v, best[label].get(k, v))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    same = all(len(d) == 1 for d in digests.values())
    print(f"µs of CPU per row, best of {args.rounds} rounds of {args.n:,} rows per scenario "
          f"into a {PREFILL:,}-row table ({sys.implementation.name} "
          f"{sys.version.split()[0]}, {time.time() - started:.0f} s)")
    print("| scenario, phase | " + " | ".join(trees) + " |" + (" ratio |" if tmp else ""))
    print("| --- |" + " ---: |" * (len(trees) + (1 if tmp else 0)))
    for scenario in SCENARIOS:
        for phase in ("writer", "frames", "sink", "encode"):
            k = f"{scenario}.{phase}"
            row = [best[label][k] for label in trees]
            line = f"| {scenario}, {phase} | " + " | ".join(f"{v:.2f}" for v in row) + " |"
            if tmp:
                line += f" {row[1] / row[0]:.2f} |"
            print(line)
    if tmp:
        print("stored rows identical in both trees: " + ("yes" if same else "NO"))
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
