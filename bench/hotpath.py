"""
Hot-path micro-benchmark: the Python the DNS process runs per answered UDP
query, in-process, without dnsperf or a daemon.

    .venv/bin/python -m bench.hotpath [--against main] [--rounds 6] [-n 200000]
                                      [--only SCENARIO ...]

Builds the engine the way the daemon does (L{sentinel.dns.service}: an
L{Engine} with a compiled L{Policy} -- one default profile with a
blocklist --, the query log's buffer switched off, a L{FastPath} in front,
``time.time`` as the clock like the reactor's), warms the cache with one
A answer for each of 5,000 names through the real miss path, then times:

- ``hit``: ``FastPath.handle`` for cache hits (plain queries, as dnsperf
  sends them), through a port whose ``sendto`` is a C no-op;
- ``hit_edns``: the same with an EDNS0 OPT record (what stub resolvers send);
- ``blocked``: ``FastPath.handle`` for 5,000 names on the blocklist;
- ``blocked_new``: the same for 200,000 different names on the blocklist
  (``t{i}.ads{i % 997}.block.test``, as in the DNS benchmark), in a
  shuffled cycle: more names than any per-name memo holds, so each query
  is a name the process has not seen lately (parse, suffix matching,
  decision and blocked answer all done again);
- ``forwarded``: a miss for a name never asked before, all the way:
  ``FastPath.handle``, the engine, the forwarder, the real
  ``UdpTransport`` (random ID, socket pool, the upstream query), then the
  upstream's answer through ``UdpTransport._on_data`` (ID and question
  checks), ``parse_response``, the cache and the reply; its sockets are
  fakes, so this is the Python of a forwarded query without its four
  system calls (the time includes building each upstream answer, ~0.3 us);
- ``doread``: ``UdpPort.doRead`` over a real loopback UDP socket, 64 queued
  cache-hit queries per call (so ``recvfrom``/``sendto`` system calls and
  one EAGAIN per batch are included; noisier), on a socket bound to
  127.0.0.1 as in the DNS benchmark (``--dns-interface``);
- ``doread_pktinfo``: the same on a wildcard socket (the default, no
  ``--dns-interface``: ``recvmsg`` with the arrival address, replies sent
  with ``sendmsg`` from it);
- ``reactor``: the whole process: Twisted's epoll reactor serving a
  127.0.0.1 socket, kept busy with cache hits by a load generator in
  another process (on the other core when there are two, the server
  pinned to its own), ``OUTSTANDING`` queries in flight; the server's CPU
  time (user + system, ``getrusage``) per answer over 3 s.  This is the
  DNS benchmark's "CPU per answer" for cache hits, without dnsperf and
  the query log.  The qps it reaches is printed too, but the Python load
  generator does not saturate the server: compare the CPU per answer.

Times are the process's CPU time (``time.process_time``), not wall time.
Each scenario is timed ``rounds`` times (``reactor``: once per child
process, ``rounds`` / 2 times) and the best (lowest) ns/query is kept: the
machine is shared, so only the best runs compare.  With
``--against REF`` the ``sentinel`` package of git ref REF is extracted to a
temporary folder and both trees are measured in child processes, taking
turns round by round, so the before/after numbers come from the same
minutes.
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

from bench.trees import REPO, run_child as run_in_tree, versions

NAMES = 5000
SCENARIOS = ("hit", "hit_edns", "blocked", "blocked_new", "forwarded", "doread",
             "doread_pktinfo", "reactor")
NEW_NAMES = 200_000  # blocked_new: as many names as the DNS benchmark's blocklist
OUTSTANDING = 200  # queries in flight from the load generator (as dnsperf -q 200)


def wire_name(text):
    return b"".join(bytes((len(label),)) + label.encode() for label in text.split(".")) + b"\x00"


def query(qid, name, qtype=1, edns=False):
    flags = b"\x01\x00"  # RD
    counts = b"\x00\x01\x00\x00\x00\x00" + (b"\x00\x01" if edns else b"\x00\x00")
    out = qid.to_bytes(2, "big") + flags + counts + wire_name(name) + qtype.to_bytes(2, "big") \
        + b"\x00\x01"
    if edns:  # OPT: root, type 41, payload 1232, ext-rcode 0, version 0, no DO, no options
        out += b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    return out


def answer(question, i):
    """An upstream answer: one A record, TTL 3600, name compressed to the question."""
    return (b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question
            + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04"
            + bytes((198, 18, i >> 8 & 0xFF, i & 0xFF)))


class Port:
    """A UDP port whose sendto does nothing (a C call, like socket.sendto)."""

    tcp = False
    sendto = {}.get  # sendto(reply, addr) -> None, no Python frame


class Transport:
    """An upstream that remembers attempts; the benchmark answers them."""

    kind = "udp"

    def __init__(self):
        self.sent = []

    def send(self, attempt):
        self.sent.append(attempt)

    def cancel(self, attempt):
        pass

    def close(self):
        pass


def hit_names():
    return [f"www{i}.site{i % 97}.example.com" for i in range(NAMES)]


def merged_lists(listed):
    """
    One list's merged names from {name hash: 1}, for this tree's policy or an
    older one's (one plain dict before the names were sharded).
    """
    from sentinel.filtering.policy import MergedLists

    if hasattr(MergedLists, "of"):
        return MergedLists.of(listed, False, (1,))
    return MergedLists(listed, False, (1,))


def new_names():
    return [f"t{i}.ads{i % 997}.block.test" for i in range(NEW_NAMES)]


def build():
    from twisted.internet.task import Clock

    from sentinel.dns.decision import PolicySource
    from sentinel.dns.engine import Engine
    from sentinel.dns.fastpath import FastPath
    from sentinel.dns.forwarder import Upstream
    from sentinel.dns.stats import DnsStats
    from sentinel.dns.upstreamspec import parse_upstream
    from sentinel.filtering.policy import Policy, Profile, name_hash
    from sentinel.filtering.querylog import QueryLog

    hits = hit_names()
    blocked = [f"ads{i}.tracker{i % 89}.example.net" for i in range(NAMES)]
    listed = {name_hash(wire_name(n)[:-1]): 1 for n in blocked}
    listed.update((name_hash(wire_name(n)[:-1]), 1) for n in new_names())
    policy = Policy(Profile(lists=merged_lists(listed)))
    log = QueryLog()
    log.enabled = False  # "query log off": record() only counts
    clock = Clock()
    clock.seconds = time.time  # the reactor's seconds() is time.time itself
    engine = Engine(clock, PolicySource(policy), log, stats=DnsStats())
    transport = Transport()
    spec = "127.0.0.1:53000"
    engine.forwarder.set_upstreams([Upstream(parse_upstream(spec), transport,
                                             engine.stats.upstream(spec))])
    fast = FastPath(engine)
    port = Port()
    # As in the DNS benchmark (dnsperf on 127.0.0.1): loopback is allowed and
    # exempt from the rate limit, like a LAN client under the limit.
    client = ("127.0.0.1", 40000)
    for i, name in enumerate(hits):
        fast.handle(query(i, name), client, port, None)
        attempt = transport.sent[-1]
        attempt.answered(answer(attempt.question, i), 12 + len(attempt.question))
    assert len(engine.cache) == NAMES, len(engine.cache)
    return engine, fast, port, client, hits, blocked


def check(fast, client, hits, blocked, fresh):
    """The timed queries really are hits and blocks (answers are recorded here)."""
    class Recording:
        tcp = False
        sendto = None

        def __init__(self):
            self.sent = []

        def send(self, data, addr, cmsg):
            self.sent.append(data)

    rec = Recording()
    fast.handle(query(7, hits[3]), client, rec, None)
    fast.handle(query(8, blocked[3]), client, rec, None)
    for i in (0, len(fresh) // 2, len(fresh) - 1):
        fast.handle(query(9, fresh[i]), client, rec, None)
    hit, block, *new = rec.sent
    assert hit[3] & 0xF == 0 and hit[6:8] == b"\x00\x01", hit
    for answer in (block, *new):
        assert answer[3] & 0xF == 3 and answer[8:10] == b"\x00\x01", answer  # NXDOMAIN + SOA


def timed(fn, rounds):
    best = None
    for _ in range(rounds):
        ns = fn()
        best = ns if best is None or ns < best else best
    return best


def child(rounds, n, only=SCENARIOS):
    import gc

    from twisted.internet import epollreactor

    epollreactor.install()  # the daemon's reactor on Linux

    engine, fast, port, client, hits, blocked = build()
    fresh = new_names()
    check(fast, client, hits, blocked, fresh)
    gc.collect()
    gc.freeze()  # as the daemon does (sentinel.dns.service.tune_runtime)
    gc.set_threshold(20_000, 50, 1000)
    rng = random.Random(1)
    handle = fast.handle
    results = {}

    def loop(wires):
        def run():
            reps = max(1, n // len(wires))
            t = time.process_time()
            for _ in range(reps):
                for w in wires:
                    handle(w, client, port, None)
            return (time.process_time() - t) / (reps * len(wires)) * 1e9
        return run

    random.Random(2).shuffle(fresh)
    for label, names, edns in (("hit", hits, False), ("hit_edns", hits, True),
                               ("blocked", blocked, False), ("blocked_new", fresh, False)):
        if label in only or label != "blocked_new":  # (the same random IDs as before)
            wires = [query(rng.randrange(65536), name, edns=edns) for name in names]
        if label in only:
            results[label] = timed(loop(wires), rounds)
    if "forwarded" in only:
        results["forwarded"] = timed(forwarded(max(1, n // 4)), rounds)
    if "doread" in only:
        results["doread"] = timed(doread(fast, hits, n), rounds)
    if "doread_pktinfo" in only:
        results["doread_pktinfo"] = timed(doread(fast, hits, n, wildcard=True), rounds)
    if "reactor" in only:
        results["reactor"], results["reactor_qps"] = reactor_run(engine, fast)
    snap = engine.stats.snapshot()
    assert snap["cache_misses"] == NAMES, snap
    return results


def pin(cpu):
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def reactor_run(engine, fast, warmup=1.0, seconds=3.0):
    import resource

    from twisted.internet import reactor

    from sentinel.dns.sockets import UdpPort, udp_socket

    pin(1)
    port = UdpPort(reactor, udp_socket("127.0.0.1", 0), fast.handle)
    port.startListening()
    load = subprocess.Popen([sys.executable, "-m", "bench.hotpath", "--load",
                             str(port.getHost()[1]), str(warmup + seconds + 1)], cwd=REPO)
    marks = []

    def mark():
        r = resource.getrusage(resource.RUSAGE_SELF)
        marks.append((r.ru_utime + r.ru_stime, engine.stats.answered, time.monotonic()))
        if len(marks) == 2:
            reactor.stop()

    reactor.callLater(warmup, mark)
    reactor.callLater(warmup + seconds, mark)
    reactor.run()
    load.wait()
    port.stopListening()
    (cpu0, n0, t0), (cpu1, n1, t1) = marks
    return (cpu1 - cpu0) / (n1 - n0) * 1e9, (n1 - n0) / (t1 - t0)


def load(port, seconds):
    """Keep OUTSTANDING cache-hit queries in flight to 127.0.0.1:port."""
    import select

    pin(0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    wires = [query(i, name) for i, name in enumerate(hit_names())]
    poll = select.poll()
    poll.register(s, select.POLLIN)
    send, recv = s.send, s.recv
    end = time.monotonic() + seconds
    i = out = 0
    while time.monotonic() < end:
        while out < OUTSTANDING:
            send(wires[i % NAMES])
            i += 1
            out += 1
        if not poll.poll(100):
            out = 0  # replies lost: start again
        while True:
            try:
                recv(4096)
            except BlockingIOError:
                break
            out -= 1


class FakeUpstreamSocket:
    """What UdpTransport uses of a UdpClientSocket, without a socket."""

    def __init__(self, sent, number):
        self.local_port = 40000 + number
        self.pending = {}
        self.used = 0
        self.sock = self
        self.send = sent.append  # sock.send(query)

    def close(self):
        pass


def forwarded(n):
    """Time per forwarded miss (see the module doc); names never asked before."""
    from twisted.internet.task import Clock

    from sentinel.dns.decision import PolicySource
    from sentinel.dns.engine import Engine
    from sentinel.dns.fastpath import FastPath
    from sentinel.dns.forwarder import Upstream
    from sentinel.dns.stats import DnsStats
    from sentinel.dns.udp import UdpTransport
    from sentinel.dns.upstreamspec import parse_upstream
    from sentinel.filtering.policy import Policy, Profile, name_hash
    from sentinel.filtering.querylog import QueryLog

    sent, sockets = [], []

    class Transport(UdpTransport):
        def _new_socket(self):
            sockets.append(FakeUpstreamSocket(sent, len(sockets)))
            return sockets[-1]

    listed = {name_hash(wire_name(n)[:-1]): 1 for n in new_names()[:NAMES]}
    log = QueryLog()
    log.enabled = False
    clock = Clock()
    clock.seconds = time.time
    engine = Engine(clock, PolicySource(Policy(Profile(lists=merged_lists(listed)))),
                    log, stats=DnsStats())
    spec = "127.0.0.1:53000"
    transport = Transport(None, "127.0.0.1", 53000)
    engine.forwarder.set_upstreams([Upstream(parse_upstream(spec), transport,
                                             engine.stats.upstream(spec))])
    on_data = transport._on_data
    handle = FastPath(engine).handle
    port, client = Port(), ("127.0.0.1", 40000)
    rng = random.Random(3)
    record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc6\x12\x00\x02"
    head = b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01"
    serial = [0]

    def run():
        first = serial[0]
        serial[0] += n
        wires = [query(rng.randrange(65536), f"f{i}.n{i % 1013}.fwd.test")
                 for i in range(first, first + n)]
        t = time.process_time()
        for w in wires:
            handle(w, client, port, None)
            q = sent.pop()
            qid, opt = q[:2], len(q) - 11  # our query ends with an 11-byte OPT record
            on_data(next(s for s in sockets if qid in s.pending),
                    qid + head + q[12:opt] + record + q[opt:])
        ns = (time.process_time() - t) / n * 1e9
        snap = engine.stats.snapshot()
        assert snap["cache_misses"] == serial[0] and snap["inflight"] == 0, snap
        return ns
    return run


def doread(fast, hits, n, wildcard=False):
    from sentinel.dns.sockets import UdpPort, udp_socket

    server = udp_socket("0.0.0.0" if wildcard else "127.0.0.1", 0, wildcard=wildcard)
    port = UdpPort(None, server, fast.handle, pktinfo=wildcard)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.setblocking(False)
    target = ("127.0.0.1", server.getsockname()[1])
    wires = [query(i, name) for i, name in enumerate(hits)]
    batch = 64

    def run():
        total = 0.0
        done = 0
        i = 0
        while done < n // 4:
            for _ in range(batch):
                client.sendto(wires[i % len(wires)], target)
                i += 1
            t = time.process_time()
            port.doRead()
            total += time.process_time() - t
            done += batch
            got = 0
            while True:
                try:
                    client.recv(4096)
                    got += 1
                except BlockingIOError:
                    break
            assert got == batch, got
        return total / done * 1e9
    return run


def run_child(tree, rounds, n, only):
    return run_in_tree("bench.hotpath", tree, ["--rounds", str(rounds), "-n", str(n),
                                                   "--only", *only])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", metavar="REF", help="also measure git ref REF (e.g. main)")
    p.add_argument("--rounds", type=int, default=6, help="timings per scenario (best kept)")
    p.add_argument("-n", type=int, default=200_000, help="queries per timing")
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=SCENARIOS,
                   help="scenarios to run (default: all)")
    p.add_argument("--child", metavar="TREE", help=argparse.SUPPRESS)
    p.add_argument("--load", nargs=2, type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        load(int(args.load[0]), args.load[1])
        return
    if args.child:
        sys.path.insert(0, args.child)  # its sentinel package, before this checkout's
        print(json.dumps(child(args.rounds, args.n, args.only)))
        return
    trees, tmp = versions(args.against, "hotpath-")
    best = {label: {} for label in trees}
    try:
        # Take turns, one round each, so a noisy minute hits both trees.
        for _ in range(max(1, args.rounds // 2)):
            for label, tree in trees.items():
                for k, v in run_child(tree, 2, args.n, args.only).items():
                    keep = max if k.endswith("_qps") else min
                    best[label][k] = keep(v, best[label].get(k, v))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"ns per query, best of {max(1, args.rounds // 2) * 2} timings of ~{args.n} "
          f"queries ({sys.implementation.name} {sys.version.split()[0]})")
    print("| scenario | " + " | ".join(trees) + " |" + (" change |" if tmp else ""))
    print("| --- |" + " ---: |" * (len(trees) + (1 if tmp else 0)))
    for k in args.only:
        row = [best[label][k] for label in trees]
        line = f"| {k} | " + " | ".join(f"{v:,.0f}" for v in row) + " |"
        if tmp:
            line += f" {row[1] - row[0]:+,.0f} ({(row[1] / row[0] - 1) * 100:+.0f}%) |"
        print(line)
    if "reactor" in args.only:
        print("\nreactor run, answers per second (highest): " + ", ".join(
            f"{label} {best[label]['reactor_qps']:,.0f}" for label in trees))


if __name__ == "__main__":
    main()
