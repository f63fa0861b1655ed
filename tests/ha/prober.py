"""
A DNS client that asks SERVER every INTERVAL seconds with dnspython's stub
(dns.query.udp, which rejects answers from any other source address than
the one asked) and writes one line per query to OUT: "<unix time> ok
<answer>" or "<unix time> fail <error>".

A query that times out must not delay the next one, so TIMEOUT/INTERVAL
workers take turns, each asking every TIMEOUT seconds, offset by INTERVAL.

    python -m tests.ha.prober --server 198.18.0.53 --name probe.example.test --out FILE
"""

import argparse
import threading
import time

import dns.exception
import dns.message
import dns.query


def worker(args, offset, period, out, lock):
    next_at = time.monotonic() + offset
    while True:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += period
        sent = time.time()
        try:
            reply = dns.query.udp(dns.message.make_query(args.name, "A"), args.server,
                                  timeout=args.timeout)
            answers = [r.to_text() for rrset in reply.answer for r in rrset]
            line = f"{sent:.3f} ok {','.join(answers) or '-'}\n"
        except (dns.exception.DNSException, OSError) as e:
            line = f"{sent:.3f} fail {type(e).__name__}\n"
        with lock:
            out.write(line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=0.25)
    args = parser.parse_args()
    workers = max(1, round(args.timeout / args.interval))
    period = workers * args.interval
    lock = threading.Lock()
    with open(args.out, "a", buffering=1) as out:
        threads = [threading.Thread(target=worker, daemon=True,
                                    args=(args, i * args.interval, period, out, lock))
                   for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


if __name__ == "__main__":
    main()
