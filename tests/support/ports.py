"""Free high ports on loopback for tests that start real processes."""

import random
import socket

# Ports this test process has handed out already: a daemon given the same
# port as DNS and HTTP port (or two daemons given one port) cannot start.
_given = set()

# Below this, the kernel never picks a port by itself (bind to port 0, the
# source port of a connection or of a daemon's upstream query socket).
_FALLBACK_EPHEMERAL_LOW = 32768
_LOWEST = 10000


def ephemeral_range(path="/proc/sys/net/ipv4/ip_local_port_range"):
    """(low, high) of the ports the kernel hands out by itself."""
    try:
        with open(path) as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return _FALLBACK_EPHEMERAL_LOW, 60999


def _candidates(rng):
    """Ports to try: outside the kernel's ephemeral range when there is room.
    A port from inside it (what bind(0) gives) is free only until the
    process it is meant for binds it, a second or so later; meanwhile any
    outgoing connection or UDP socket on the machine (this suite's HTTP
    clients, every daemon's upstream sockets) may take it as its source
    port, and the daemon then fails to start."""
    low, high = ephemeral_range()
    if low - _LOWEST >= 2000:
        while True:
            yield rng.randrange(_LOWEST, low)
    elif high < 65535 - 2000:
        while True:
            yield rng.randrange(high + 1, 65536)
    else:  # no room outside: what the kernel gives
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                yield s.getsockname()[1]


def _bindable(port, host):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:
                # As a listening server binds it (twisted does): a port with
                # connections in TIME_WAIT is free for it.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1", rng=random.SystemRandom()):
    """A port free for both TCP and UDP right now, never handed out before
    by this process, and (where the system leaves room) not one the kernel
    gives out on its own in the meantime.  ``kind`` is kept for callers;
    the port is free for both."""
    if len(_given) > 10000:
        _given.clear()
    candidates = _candidates(rng)
    for _ in range(500):
        port = next(candidates)
        if port in _given or not _bindable(port, host):
            continue
        _given.add(port)
        return port
    raise RuntimeError("no free port found")
