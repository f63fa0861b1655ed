"""
Who may ask (pure; ``now`` is passed in).

- Access list: by default only loopback, private (RFC 1918, RFC 4193 ULA,
  100.64/10 CGNAT) and link-local sources, plus the networks attached to
  this node (``local``: the prefixes of its own addresses, followed at run
  time by L{sentinel.dns.onlink}, used while ``local_enabled``), are
  answered, so Sentinel is never an open resolver.  Loopback is always
  allowed (it is this host; the health probe uses it).  Queries from
  elsewhere are dropped silently.
- Per-client rate limit: a token bucket per source address (``rate``
  queries/s, bursts of ``burst``).  Over the limit, a query is dropped,
  except every ``slip``-th which gets an empty truncated reply (TC=1, no
  larger than the query), so a real client under a spoofed flood can still
  get through over TCP, while a spoofer gains no amplification.  Exempt
  networks (default: loopback, e.g. a local forwarder that aggregates many
  clients) are not limited.  Over TCP (which cannot be spoofed) a limited
  query is answered REFUSED.  A clock step back counts as no time passing
  (checked only once a client is over its limit: no cost per query).
- The table of verdicts and buckets holds ``max_clients`` addresses.  When
  it is full, what can be forgotten without changing any answer is: the
  verdicts (recomputed on the next query) and the buckets that have
  refilled (a full bucket is what a new client gets).  If that frees
  nothing (more addresses than that queried within a burst's time: a flood
  from random source addresses), new addresses share one bucket until room
  is found (looked for at most once a second).  Before, the table was
  emptied: every client limited at that moment got a full burst again.
"""

import ipaddress

DEFAULT_ALLOWED = (
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
    "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10",
)
DEFAULT_EXEMPT = ("127.0.0.0/8", "::1/128")
LOOPBACK = ("127.0.0.0/8", "::1/128")

OK, DENIED, LIMITED, SLIP = 0, 1, 2, 3
MAX_CLIENTS = 65536


def parse_networks(items):
    """Networks from text ("10.0.0.0/8", "192.168.1.5"); ValueError if bad."""
    return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items)


def _address(ip):
    """The address in ``ip`` (text), an IPv4-mapped IPv6 one as IPv4; None if
    it is not an address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class _Bucket:
    __slots__ = ("tokens", "last", "over")

    def __init__(self, tokens, last):
        self.tokens = tokens
        self.last = last
        self.over = 0


class Access:
    def __init__(self, allowed=DEFAULT_ALLOWED, rate=1000.0, burst=2000.0,
                 exempt=DEFAULT_EXEMPT, slip=2, local_enabled=True, max_clients=MAX_CLIENTS):
        self.local = ()  # the on-link networks (set_local)
        self.max_clients = max_clients
        self.overflowed = 0  # queries from addresses the table had no room for
        self.configure(allowed, rate, burst, exempt, slip, local_enabled)

    def configure(self, allowed, rate, burst, exempt, slip=2, local_enabled=True):
        self.allowed = parse_networks(tuple(allowed) + LOOPBACK)
        self.local_enabled = bool(local_enabled)
        self.exempt = parse_networks(exempt)
        self.rate = float(rate)  # 0 disables the limit
        self.burst = max(float(burst), 1.0)
        self.slip = slip
        self._clients = {}  # ip text -> OK, DENIED or a _Bucket
        self._shared = _Bucket(self.burst, 0.0)  # for addresses the table has no room for
        self._next_sweep = None
        # ip text -> True: allowed and not limited (read by the fast path,
        # which keeps a reference: cleared in place, never replaced)
        if not hasattr(self, "unlimited"):
            self.unlimited = {}
        self.unlimited.clear()

    def set_local(self, networks):
        """The networks attached to this node now (ip_network objects)."""
        networks = tuple(networks)
        if networks == self.local:
            return
        self.local = networks
        if self.local_enabled:  # verdicts may change: decide every client again
            self._clients.clear()
            self.unlimited.clear()

    def _classify(self, ip):
        addr = _address(ip)
        if addr is None:
            return DENIED
        if not any(addr in net for net in self.allowed if net.version == addr.version) and \
                not (self.local_enabled and any(addr in net for net in self.local
                                                if net.version == addr.version)):
            return DENIED
        if self.rate <= 0 or any(addr in net for net in self.exempt
                                 if net.version == addr.version):
            return OK
        return None  # limited: gets a bucket

    def check(self, ip, now):
        """OK, DENIED (drop), LIMITED (drop) or SLIP (send a truncated reply)."""
        state = self._clients.get(ip)
        if state is None:
            kind = self._classify(ip)
            if len(self._clients) >= self.max_clients and not self._make_room(now):
                if kind is not None:
                    return kind  # a verdict: nothing to remember
                self.overflowed += 1
                state = self._shared
            else:
                state = self._clients[ip] = kind if kind is not None else _Bucket(self.burst, now)
                if kind == OK:
                    self.unlimited[ip] = True
        if state.__class__ is int:
            return state
        tokens = state.tokens + (now - state.last) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        state.last = now
        if tokens >= 1.0:
            state.tokens = tokens - 1.0
            return OK
        if tokens < state.tokens:
            # The clock stepped back (now < last): count no time, not
            # negative time, or the client would wait for the whole step.
            tokens = state.tokens
            if tokens >= 1.0:
                state.tokens = tokens - 1.0
                return OK
        state.tokens = tokens
        state.over += 1
        if self.slip and state.over % self.slip == 0:
            return SLIP
        return LIMITED

    def _make_room(self, now):
        """
        Forget what changes no answer (verdicts, refilled buckets); True if
        that made room.  Tried at most once a second while the table is full.
        """
        if self._next_sweep is not None and now < self._next_sweep and \
                now >= self._next_sweep - 1.0:  # (a clock step back: try now)
            return False
        self._next_sweep = now + 1.0
        rate, burst = self.rate, self.burst
        keep = {}
        for ip, state in self._clients.items():
            if state.__class__ is not int and \
                    state.tokens + (now - state.last) * rate < burst:
                keep[ip] = state
        self._clients = keep
        self.unlimited.clear()  # the fast path's copy of the verdicts (kept in place)
        return len(keep) < self.max_clients

    def allowed_ip(self, ip):
        return self._classify(ip) != DENIED

    def exempt_ip(self, ip):
        """True if ``ip`` is in the exempt networks (no per-client limits)."""
        addr = _address(ip)
        if addr is None:
            return False
        return any(addr in net for net in self.exempt if net.version == addr.version)
