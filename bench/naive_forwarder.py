"""
The baseline: twisted.names used the obvious way — DNSServerFactory with a
blocklist authority, a CacheResolver and a client.Resolver to the upstream.

    python bench/naive_forwarder.py PORT UPSTREAM_PORT BLOCKED_NAMES_FILE
"""

import sys

from twisted.internet import defer, reactor
from twisted.names import cache, client, common, dns, error, server


class Blocklist(common.ResolverBase):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def _lookup(self, name, cls, type, timeout=None):
        if name.lower() in self.names:
            return defer.fail(error.AuthoritativeDomainError(name))
        return defer.fail(error.DomainError(name))


def main(port, upstream_port, blocked_file):
    with open(blocked_file, "rb") as f:
        names = {line.strip().lower() for line in f if line.strip()}
    factory = server.DNSServerFactory(
        authorities=[Blocklist(names)],
        caches=[cache.CacheResolver()],
        clients=[client.Resolver(servers=[("127.0.0.1", upstream_port)])],
    )
    reactor.listenUDP(port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
