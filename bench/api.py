"""
Admin API costs, measured against a real daemon on loopback:

- scrypt password hashing with the production parameters;
- latency of sequential API requests: unauthenticated, with an API token,
  with a session cookie (what authentication adds), and of a login;
- DNS latency (locally answered rewrite, UDP, sequential) idle and while
  a client logs in back to back: password hashing runs in a thread, one
  at a time, so DNS should barely notice.  Both runs side by side in one
  process run (the machine is shared and noisy: compare within the table).

    .venv/bin/python -m bench.api [--requests 300] [--seconds 8]

Writes the "api" section of docs/PERFORMANCE.md.
"""

import argparse
import os
import platform
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from bench.report import write_section  # noqa: E402
from sentinel.auth import passwords  # noqa: E402
from tests.api.daemon_admin import PASSWORD, create_token, login, setup_admin  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402


class Cleanups:
    def __init__(self):
        self._fns = []

    def addCleanup(self, fn, *args):
        self._fns.append((fn, args))

    def run(self):
        for fn, args in reversed(self._fns):
            try:
                fn(*args)
            except Exception as e:
                print(f"cleanup: {e}", file=sys.stderr)


def ms(values, q=None):
    values = sorted(values)
    if q is None:
        return statistics.median(values) * 1000
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def dns_latencies(d, seconds):
    q = dns.message.make_query("bench.home.", "A")
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        r = dns.query.udp(q, "127.0.0.1", port=d.dns_port, timeout=2)
        out.append(time.perf_counter() - t)
        assert r.answer, r
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=8.0,
                    help="length of each DNS measurement")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    hashes = timed(lambda: passwords.hash_password("benchmark password"), 7)
    log_n, block, lanes = passwords.DEFAULT_PARAMS
    memory = 128 * block * (1 << log_n) / (1 << 20)

    cl = Cleanups()
    try:
        d = Daemon(cl).start()
        cookie = setup_admin(d)
        token = create_token(d, cookie)
        auth = {"Authorization": f"Bearer {token}"}
        r = d.post("/api/dns/rewrites", {"domain": "bench.home", "answer": "10.0.0.7"},
                   headers=auth)
        assert r.status == 201, r.body
        n = args.requests
        health = timed(lambda: d.get("/api/health"), n)
        by_token = timed(lambda: d.get("/api/auth/me", headers=auth), n)
        session = login(d)
        by_cookie = timed(lambda: d.get("/api/auth/me", headers={"Cookie": session}), n)
        logins = timed(lambda: login(d), 20)

        dns_idle = dns_latencies(d, args.seconds)
        stop = threading.Event()
        count = [0]

        def storm():
            while not stop.is_set():
                d.post("/api/auth/login", {"username": "admin", "password": PASSWORD})
                count[0] += 1

        thread = threading.Thread(target=storm, daemon=True)
        started = time.perf_counter()
        thread.start()
        dns_busy = dns_latencies(d, args.seconds)
        stop.set()
        thread.join(10)
        storm_seconds = time.perf_counter() - started
        dns_idle2 = dns_latencies(d, args.seconds)  # idle again, after
    finally:
        cl.run()

    load = os.getloadavg()[0]
    text = f"""\
Command: `.venv/bin/python -m bench.api --requests {n} --seconds {args.seconds:g}`
({time.strftime('%Y-%m-%d')}, CPython {platform.python_version()}, 2 shared cores, load
average {load:.1f} at the end; one daemon on SQLite on loopback; sequential blocking
clients; one run — compare within the table).

| what | median | p95 |
| --- | ---: | ---: |
| scrypt hash, production parameters (n=2^{log_n}, r={block}, p={lanes}: {memory:.0f} MiB) | {ms(hashes):.0f} ms | {ms(hashes, .95):.0f} ms |
| `GET /api/health` (no authentication) | {ms(health):.2f} ms | {ms(health, .95):.2f} ms |
| `GET /api/auth/me` with an API token | {ms(by_token):.2f} ms | {ms(by_token, .95):.2f} ms |
| `GET /api/auth/me` with a session cookie | {ms(by_cookie):.2f} ms | {ms(by_cookie, .95):.2f} ms |
| `POST /api/auth/login` (scrypt in a thread + session write) | {ms(logins):.0f} ms | {ms(logins, .95):.0f} ms |
| DNS query (local rewrite), idle ({len(dns_idle)} queries) | {ms(dns_idle):.2f} ms | {ms(dns_idle, .95):.2f} ms |
| DNS query while a client logs in back to back ({count[0]} logins in {storm_seconds:.1f} s, {len(dns_busy)} queries) | {ms(dns_busy):.2f} ms | {ms(dns_busy, .95):.2f} ms |
| DNS query, idle again afterwards ({len(dns_idle2)} queries) | {ms(dns_idle2):.2f} ms | {ms(dns_idle2, .95):.2f} ms |

Authentication costs one indexed store read per request (the token's or the session's
entity), which is the difference between the first and the next two request rows. The login
client shares the benchmark process (and its GIL) with the DNS client, hence fewer logins
than the login latency allows; what matters is that the daemon's DNS latency does not move
while it hashes passwords.
"""
    print(text)
    if not args.no_write:
        write_section("api", text)


if __name__ == "__main__":
    main()
