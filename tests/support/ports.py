"""Free high ports on loopback for tests that start real processes."""

import socket


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port free for both TCP and UDP right now (best effort)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")
