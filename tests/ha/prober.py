"""
A DNS client that asks SERVER every INTERVAL seconds with dnspython (which
rejects answers from any other source address than the one asked) and
writes one line per query to OUT: "<unix time> ok <answer>" or
"<unix time> fail <error>".

    python -m tests.ha.prober --server 198.18.0.53 --name probe.example.test --out FILE
"""

import argparse
import time

import dns.exception
import dns.message
import dns.query


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=0.25)
    args = parser.parse_args()
    with open(args.out, "a", buffering=1) as out:
        next_at = time.monotonic()
        while True:
            sent = time.time()
            try:
                reply = dns.query.udp(dns.message.make_query(args.name, "A"), args.server,
                                      timeout=args.timeout)
                answers = [r.to_text() for rrset in reply.answer for r in rrset]
                out.write(f"{sent:.3f} ok {','.join(answers) or '-'}\n")
            except (dns.exception.DNSException, OSError) as e:
                out.write(f"{sent:.3f} fail {type(e).__name__}\n")
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - args.interval)


if __name__ == "__main__":
    main()
