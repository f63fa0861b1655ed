"""
Login throttling: at most ``limit`` failed attempts per client within
``window`` seconds; beyond that, attempts are refused (HTTP 429) until the
oldest failure leaves the window.  A success clears the client's record.

Clients are keyed by the peer address of the connection (forwarding
headers are not trusted).  Memory is bounded: at most ``max_clients``
records, the least recently failed forgotten first.
"""

import math
from collections import OrderedDict, deque


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
