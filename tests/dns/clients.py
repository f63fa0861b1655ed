"""Real DNS clients for end-to-end tests: dig, kdig and dnspython."""

import re
import socket
import subprocess

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

ZONE = {
    "www.example.test": {"A": ["198.18.0.10"], "AAAA": ["2001:db8::10"]},
    "alias.example.test": {"CNAME": "www.example.test"},
    "example.test": {"MX": [(10, "mail.example.test")], "TXT": ["hello world"]},
    "mail.example.test": {"A": ["198.18.0.25"]},
    "10.0.18.198.in-addr.arpa": {"PTR": ["www.example.test"]},
    "short.example.test": {"A": ["198.18.0.11"], "ttl": 30},
    "big.example.test": {"TXT": [f"{i:03d}" + "x" * 200 for i in range(12)]},
}


class Dig:
    def __init__(self, out):
        self.out = out

    @property
    def status(self):
        m = re.search(r"status: (\w+)", self.out)
        return m.group(1) if m else None

    @property
    def flags(self):
        m = re.search(r";; [Ff]lags: ([\w ]*);", self.out)
        return m.group(1).split() if m else []

    def section(self, name):
        m = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", self.out, re.S)
        if not m:
            return []
        return [line.split() for line in m.group(1).splitlines() if line.strip()]

    @property
    def answers(self):
        return [" ".join(r[4:]) for r in self.section("ANSWER")]

    @property
    def ttls(self):
        return [int(r[1]) for r in self.section("ANSWER")]

    @property
    def transport(self):
        m = re.search(r";; (?:SERVER:|From) .*?\((\w+)\)", self.out)
        return m.group(1) if m else None


def dig(port, *args, server="127.0.0.1", tool="dig"):
    opts = ["+tries=1", "+time=3"] if tool == "dig" else ["+retry=0", "+timeout=3"]
    cmd = [tool, f"@{server}", "-p", str(port)] + opts + list(args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    return Dig(result.stdout + result.stderr)


def kdig(port, *args, server="127.0.0.1"):
    return dig(port, *args, server=server, tool="kdig")


def query(port, name, rdtype="A", tcp=False, server="127.0.0.1", timeout=3, **kw):
    """dnspython query; returns the response message."""
    q = dns.message.make_query(name, rdtype, **kw)
    if tcp:
        return dns.query.tcp(q, server, port=port, timeout=timeout)
    return dns.query.udp(q, server, port=port, timeout=timeout)


def raw_udp(port, payload, server="127.0.0.1", timeout=1.0, source=None):
    """Send raw bytes; (reply, from_address) or (None, None) on timeout."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(payload, (server, port))
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            return None, None
        return data, addr[0]


def addresses(response):
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset
                  if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))
