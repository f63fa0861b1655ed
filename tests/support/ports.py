"""Free high ports on loopback for tests that start real processes."""

import socket

# Ports this test process has handed out already: the kernel may give the
# same free port to two bind(0) calls in a row (the first socket is closed
# at once), and a daemon given it as DNS and HTTP port cannot start.
_given = set()


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port free for both TCP and UDP right now and never handed out
    before by this process (best effort: nothing holds it)."""
    if len(_given) > 10000:
        _given.clear()
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port in _given:
            continue
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        _given.add(port)
        return port
    raise RuntimeError("no free port found")
