"""
Login throttling: at most ``limit`` failed attempts per key within
``window`` seconds; beyond that, attempts are refused (HTTP 429) until the
oldest failure leaves the window.  A success clears the key's record.

L{LoginLimits} applies two such limits to every password guess: one per
client (L{client_key}: the peer address, an IPv6 client by its /64) and a
looser one per account, which bounds the guesses against the admin however
many addresses they come from.  Memory is bounded: at most ``max_clients``
records per limit, the least recently failed forgotten first.
"""

import ipaddress
import math
from collections import OrderedDict, deque

CLIENT_LIMIT, CLIENT_WINDOW = 10, 60.0
ACCOUNT_LIMIT, ACCOUNT_WINDOW = 30, 600.0


def client_key(host):
    """
    Whom a failed attempt is counted against, from the peer address
    (forwarding headers are not trusted): an IPv4 address as is (also when
    IPv4-mapped), an IPv6 address by its /64 -- one device on the LAN can
    take any number of addresses in its /64 (SLAAC privacy addresses), so
    counting per address would not limit it at all.
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except (AttributeError, ValueError):
        return str(host)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    def __init__(self, clock, limit=10, window=60.0, max_clients=10000):
        self._clock = clock
        self.limit = limit
        self.window = window
        self._max = max_clients
        self._failures = OrderedDict()  # client -> deque of timestamps

    def _recent(self, client, now):
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client):
        """Seconds until ``client`` may try again (0: it may now)."""
        now = self._clock.seconds()
        times = self._recent(client, now)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client):
        now = self._clock.seconds()
        times = self._recent(client, now)
        if times is None:
            times = self._failures[client] = deque()
        times.append(now)
        self._failures.move_to_end(client)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)

    def attempt(self, client):
        """
        Count an attempt as failed *before* the password is checked, so that
        attempts sent in parallel (all admitted before the first one fails)
        cannot exceed the limit; L{succeeded} clears the record and
        L{cancel} takes back an attempt that was never judged (busy).
        """
        self.failed(client)

    def cancel(self, client):
        times = self._failures.get(client)
        if times:
            times.pop()
            if not times:
                del self._failures[client]

    def succeeded(self, client):
        self._failures.pop(client, None)


class LoginLimits:
    """
    Both limits on password guesses (login, change-password): per client
    (``clients``) and per account (``accounts``, keyed by the lower-cased
    username).  A success clears the client's record but not the
    account's (only the successful attempt is taken back): failures an
    attacker spread over other addresses still count.
    """

    def __init__(self, clock, clients=None, accounts=None):
        self.clients = clients or LoginThrottle(clock, CLIENT_LIMIT, CLIENT_WINDOW)
        self.accounts = accounts or LoginThrottle(clock, ACCOUNT_LIMIT, ACCOUNT_WINDOW)

    def retry_after(self, client, account):
        """(seconds to wait, "client" or "account") -- (0, None) if it may try now."""
        wait = self.clients.retry_after(client)
        if wait:
            return wait, "client"
        wait = self.accounts.retry_after(account.lower())
        return (wait, "account") if wait else (0, None)

    def attempt(self, client, account):
        """Count an attempt before the password is checked (L{LoginThrottle.attempt})."""
        self.clients.attempt(client)
        self.accounts.attempt(account.lower())

    def cancel(self, client, account):
        self.clients.cancel(client)
        self.accounts.cancel(account.lower())

    def succeeded(self, client, account):
        self.clients.succeeded(client)
        self.accounts.cancel(account.lower())  # this attempt was not a failure
