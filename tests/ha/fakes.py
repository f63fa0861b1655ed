"""Fakes for the sidecar's edges: processes, the daemon watch, the FIFO."""

import os

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from sentinel.crypto import SecretBox, load_or_create_key
from sentinel.ha import files


class FakeHandle:
    def __init__(self, argv, pid):
        self.argv = argv
        self.pid = pid
        self.signals = []
        self.exited = defer.Deferred()

    def signal(self, name):
        self.signals.append(name)

    def exit(self, code=0):
        if not self.exited.called:
            self.exited.callback(code)


class FakeLauncher:
    """Records spawns; a --config-test run exits at once with config_test_status."""

    def __init__(self):
        self.spawned = []
        self.config_test_status = 0
        self.config_test_output = ["(line 3) bad thing"]
        self._pid = 1000

    def spawn(self, argv, on_line):
        self._pid += 1
        handle = FakeHandle(list(argv), self._pid)
        if "--config-test" in argv:
            if self.config_test_status:
                for line in self.config_test_output:
                    on_line(line)
            handle.exit(self.config_test_status)
        else:
            self.spawned.append(handle)
        return handle

    @property
    def daemons(self):
        return self.spawned


class FakeWatch:
    def __init__(self, host, port, on_change):
        self.host, self.port, self.on_change = host, port, on_change
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True


class FakeFifo:
    def __init__(self, path, on_line):
        self.path, self.on_line = path, on_line
        self.reading = self.closed = False
        self.unlinked = False
        self.replaced = False  # set by a test: someone removed or replaced the FIFO

    def startReading(self):
        self.reading = True

    def intact(self):
        return not self.closed and not self.replaced

    def close(self, unlink=True):
        self.closed = True
        self.unlinked = unlink


class LogCapture:
    def __init__(self, testcase):
        self.lines = []
        globalLogPublisher.addObserver(self._observe)
        testcase.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        self.lines.append(formatEvent(event))

    def text(self):
        return "\n".join(self.lines)


def write_config(data_dir, password="s3cret", daemon_host="127.0.0.1", daemon_port=8080,
                 role_file=None, **fields):
    """config.json as the daemon writes it (sealed password, daemon endpoint)."""
    key = load_or_create_key(os.path.join(data_dir, "node.key"))
    sealed = SecretBox(key).encrypt_text(password, files.PASSWORD_AAD) if password else None
    settings = {"enabled": True, "vip": "198.18.0.53/24", "interface": "eth0",
                "virtualRouterId": 53, "priority": 120, "advertInterval": 1,
                "mode": "multicast", "unicastPeers": [], "sourceIp": None}
    settings.update(fields)
    doc = files.config_document(settings, sealed,
                                files.daemon_endpoint(daemon_host, daemon_port, role_file))
    path = os.path.join(data_dir, "sentinel", "ha", "config.json")
    files.write_json(path, doc)
    return path
