"""
A stand-in for the virtual IP in browser tests: a TCP forwarder on a free
loopback port whose target can be switched from one daemon to another,
as keepalived moves the VIP.  Switching drops the open connections (the
old owner is gone for the client), so the browser reconnects to the new
target, keeping its cookies — like a real failover.
"""

import socket
import threading

from tests.support.ports import free_port


class Vip:
    def __init__(self, testcase, target_port, host="127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.target = target_port
        self._conns = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()
        testcase.addCleanup(self.close)

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def move_to(self, target_port):
        with self._lock:
            self.target = target_port
            conns, self._conns = self._conns, set()
        for s in conns:
            _close(s)

    def close(self):
        self._closed = True
        _close(self._listener)
        self.move_to(None)

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                target = self.target
            try:
                upstream = socket.create_connection((self.host, target), timeout=5)
                upstream.settimeout(None)
            except (OSError, TypeError):
                _close(client)
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
