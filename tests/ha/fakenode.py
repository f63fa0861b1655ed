"""
A stand-in for a Sentinel daemon inside a node namespace (harness tests):
answers DNS A queries on port 53 of the given addresses with ANSWER (so the
client sees who answered) and /api/cluster/ready on HTTP, ok while the
file READY_FILE does not say "no".

    python -m tests.ha.fakenode --dns 198.18.0.2,198.18.0.53 --http 198.18.0.2:8080 \
        --answer 198.18.0.2 --ready-file /tmp/x
"""

import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dns.message
import dns.rrset

IP_FREEBIND = 15


def serve_dns(address, answer):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((address, 53))
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            q = query.question[0]
            reply.answer.append(dns.rrset.from_text(q.name, 1, "IN", "A", answer))
            sock.sendto(reply.to_wire(), peer)
        except Exception:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dns", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--answer", required=True)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                with open(args.ready_file) as f:
                    ok = f.read().strip() != "no"
            except OSError:
                ok = True
            body = json.dumps({"ok": ok, "role": "standalone"}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    for address in args.dns.split(","):
        threading.Thread(target=serve_dns, args=(address, args.answer), daemon=True).start()
    host, port = args.http.rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
