"""
Running keepalived as a child of the sidecar: start, reload (SIGHUP, the
VIP stays where it is), stop (SIGTERM: keepalived sends a priority-0
advert and removes the VIP, so the peer takes over at once), restart with
backoff if it dies unexpectedly, and ``--config-test`` before applying a
new configuration.

Process creation goes through a L{Launcher} so the sidecar's logic is
tested with a fake one and a Clock.
"""

import os
import signal

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

log = Logger()


def keepalived_argv(binary, conf, runtime_dir):
    return [
        binary, "--dont-fork", "--log-console", "--log-detail", "--vrrp",
        "--use-file", conf,
        "--pid", os.path.join(runtime_dir, "keepalived.pid"),
        "--vrrp_pid", os.path.join(runtime_dir, "vrrp.pid"),
    ]


def config_test_argv(binary, conf):
    return [binary, "--config-test", "--use-file", conf, "--log-console", "--dont-fork"]


class NotRunnable(Exception):
    """The keepalived binary cannot be started (the message says why)."""


class _Protocol(ProcessProtocol):
    def __init__(self, on_line, exited):
        self._on_line = on_line
        self._exited = exited
        self._buffers = {1: b"", 2: b""}

    def childDataReceived(self, fd, data):
        buf = self._buffers.get(fd, b"") + data
        *lines, rest = buf.split(b"\n")
        self._buffers[fd] = rest[-65536:]
        for line in lines:
            self._on_line(line.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason):
        for rest in self._buffers.values():
            if rest:
                self._on_line(rest.decode("utf-8", "replace"))
        self._exited.callback(getattr(reason.value, "exitCode", None))


class Handle:
    def __init__(self, transport, exited):
        self._transport = transport
        self.exited = exited  # Deferred(exit code or None)
        self.pid = transport.pid

    def signal(self, name):
        try:
            self._transport.signalProcess(name)
        except Exception:  # already gone
            pass


class Launcher:
    """Spawns real processes through the reactor."""

    def __init__(self, reactor, env=None):
        self._reactor = reactor
        self._env = dict(os.environ if env is None else env)

    def spawn(self, argv, on_line):
        exited = defer.Deferred()
        transport = self._reactor.spawnProcess(
            _Protocol(on_line, exited), argv[0], list(argv), env=self._env)
        return Handle(transport, exited)


class Keepalived:
    """
    One supervised keepalived.  ``start``/``stop`` express what is wanted;
    an unexpected exit restarts it after 1, 2, 4 ... 30 s.
    """

    STOP_GRACE = 5.0
    CONFIG_TEST_TIMEOUT = 30.0

    def __init__(self, reactor, launcher, binary, runtime_dir, on_line=None):
        self._reactor = reactor
        self.on_exit = None  # called after an unexpected exit
        self._launcher = launcher
        self.binary = binary
        self.runtime_dir = runtime_dir
        self._on_line = on_line or (lambda line: log.info("keepalived: {line}", line=line))
        self.handle = None
        self.conf = None
        self.wanted = False
        self.restarts = 0
        self._backoff = 1.0
        self._restart_call = None

    @property
    def state(self):
        if self.handle is not None:
            return "running"
        return "restarting" if self.wanted else "stopped"

    def config_test(self, conf):
        """Deferred (ok, [error lines]); fails with L{NotRunnable} if the
        binary cannot be run at all (not installed, not executable)."""
        lines = []
        try:
            handle = self._launcher.spawn(config_test_argv(self.binary, conf), lines.append)
        except OSError as e:
            return defer.fail(NotRunnable(
                f"cannot run keepalived ({self.binary}: {e.strerror}); install it, or set "
                f"--keepalived / SENTINEL_KEEPALIVED to its path"))
        # A check that never ends would hold up every later change (the
        # sidecar applies one configuration at a time): it is killed.
        kill = self._reactor.callLater(self.CONFIG_TEST_TIMEOUT, handle.signal, "KILL")

        def ended(code):
            if not kill.active():
                return False, lines + [f"keepalived --config-test did not finish within "
                                       f"{self.CONFIG_TEST_TIMEOUT:g} s"]
            kill.cancel()
            return code == 0, lines

        return handle.exited.addCallback(ended)

    def start(self, conf):
        self.wanted, self.conf = True, conf
        if self.handle is None:
            self._spawn()

    def reload(self):
        if self.handle is not None:
            self.handle.signal("HUP")

    def _spawn(self):
        self._restart_call = None
        argv = keepalived_argv(self.binary, self.conf, self.runtime_dir)
        try:
            self.handle = handle = self._launcher.spawn(argv, self._on_line)
        except Exception:  # no fork or pipe (process or file limit): try again
            delay = self._restart_later()
            log.failure("keepalived could not be started; trying again in {delay:.0f} s",
                        delay=delay)
            return
        started = self._reactor.seconds()
        handle.exited.addCallback(self._exited, handle, started)

    def _restart_later(self):
        delay, self._backoff = self._backoff, min(self._backoff * 2, 30.0)
        self._restart_call = self._reactor.callLater(delay, self._spawn)
        return delay

    def _exited(self, code, handle, started):
        if handle is not self.handle:
            return
        self.handle = None
        if not self.wanted:
            return
        if self._reactor.seconds() - started > 60:
            self._backoff = 1.0
        delay = self._restart_later()
        self.restarts += 1
        log.error("keepalived exited unexpectedly (status {code}); restarting in {delay:.0f} s",
                  code=code, delay=delay)
        if self.on_exit is not None:
            self.on_exit(code)

    def stop(self):
        """Deferred firing once keepalived has exited."""
        self.wanted = False
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        self._restart_call = None
        handle = self.handle
        if handle is None:
            return defer.succeed(None)
        done = defer.Deferred()
        handle.exited.addBoth(lambda _: done.callback(None) if not done.called else None)
        handle.signal("TERM")
        kill = self._reactor.callLater(self.STOP_GRACE, handle.signal, "KILL")
        done.addBoth(lambda r: (kill.cancel() if kill.active() else None, r)[1])
        return done


def stop_stale(pid_file, conf, kill=os.kill):
    """
    A keepalived left over from a sidecar that died without stopping it
    (its pid file is in our runtime directory and its command line names
    our configuration file): terminate it so ours can start.  Returns the
    pid stopped, or None.
    """
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if pid <= 1 or conf.encode() not in cmdline:
        return None
    kill(pid, signal.SIGTERM)
    return pid
