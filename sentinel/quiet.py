"""
Client connections that do not log themselves.  Twisted's factories log
"Starting factory ..." and "Stopping factory ..." for every outgoing
connection unless ``noisy`` is false: two lines per DNS-over-TCP/TLS
upstream connection, per DNS-over-HTTPS, blocklist, cluster sync or HA
readiness HTTP connection, and four per second from the sidecar's
liveness probe while the daemon is down.  What matters about these
connections (failures, health changes) is logged by their owners.
"""

from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietHTTP11ClientFactory(_HTTP11ClientFactory):
    noisy = False


class QuietHTTPConnectionPool(HTTPConnectionPool):
    """An HTTPConnectionPool whose connections are not logged."""

    _factory = _QuietHTTP11ClientFactory
