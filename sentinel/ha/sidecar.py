"""
The keepalived sidecar (``sentinel-keepalived run``): one process next to
the daemon, in its own container or as its own systemd service, sharing
the data directory.

- every ``poll_interval`` it reads config.json (written by the daemon);
  while HA is disabled it stays idle; when enabled it renders
  keepalived.conf, has keepalived check it, and starts keepalived; a later
  change is applied with a reload (SIGHUP: the VIP stays put); disabling
  stops keepalived (the VIP moves away at once) and removes the role file;
- it reads keepalived's state changes from the notify FIFO and writes the
  role file (L{sentinel.ha.notify}); a write that fails is retried at every
  poll, a FIFO that was removed or replaced is made again (keepalived is
  reloaded to reopen it), and a ``leader`` left from before it started is
  rewritten ``follower`` (no keepalived runs yet);
- it watches the daemon's HTTP port (L{sentinel.ha.liveness}) and writes
  the result to the track file keepalived follows (crash -> FAULT at once);
- it listens to VRRP adverts (L{sentinel.ha.vrrpwatch}) -> peers.json;
- every ``release_interval`` it looks for a request to hand the VIP over
  (L{sentinel.ha.release});
- it writes netinfo.json every ``netinfo_interval`` and status.json on
  every change.
"""

import os

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from sentinel.ha import files, netinfo
from sentinel.ha.keepalived import NotRunnable, stop_stale
from sentinel.ha.layout import ConfigProblem, load_config, render_paths
from sentinel.ha.notify import parse_line
from sentinel.ha.release import Releaser
from sentinel.ha.render import RenderError, describe, render
from sentinel.ha.vrrpwatch import PeerWatch
from sentinel.periodic import looping_call

log = Logger()


class Sidecar(Service):
    def __init__(self, reactor, paths, keepalived, *, check_command, run_command,
                 make_watch, make_fifo, make_raw_reader=None,
                 poll_interval=1.0, netinfo_interval=30.0, release_interval=0.2):
        self._reactor = reactor
        self.paths = paths
        self.keepalived = keepalived
        self._check_command = tuple(check_command)  # argv prefix; URL etc. appended
        self._run_command = run_command  # argv -> Deferred(stdout bytes)
        self._make_watch = make_watch  # (host, port, on_change) -> DaemonWatch
        self._make_fifo = make_fifo  # (path, on_line) -> FifoReader
        self._make_raw_reader = make_raw_reader  # (receive) -> RawVrrpReader
        self.poll_interval = poll_interval
        self.netinfo_interval = netinfo_interval
        self.release_interval = release_interval
        self.releaser = Releaser(
            reactor, paths.release_request, paths.release_file, self._write_status,
            vrrp_state=lambda: self.status.get("vrrpState") if self.settings else None)
        self.settings = None  # applied, enabled HaSettings
        self.applied_text = None
        self.watch = None
        self.fifo = None
        self.peers = None  # PeerWatch, from startService on
        self.raw_reader = None
        self.netinfo = None
        self.status = {"haEnabled": False, "vrrpState": None,
                       "role": None, "daemonAlive": None, "lastError": None, "summary": None,
                       "roleFileError": None, "roleFile": paths.role_file,
                       "roleFileMismatch": None}
        self._role_pending = None  # (role, why) not written yet (the write failed)
        self._fifo_error = None  # why the notify FIFO cannot be made again (logged once)
        self._retired_fifo = None  # the FIFO before it was replaced, still read
        self._seen = None  # config.json bytes last looked at
        self._retry_at = None  # when to try a failed configuration again
        self._busy = False
        self._loops = []

    # -- service ---------------------------------------------------------------

    def startService(self):
        super().startService()
        os.makedirs(self.paths.runtime_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.paths.ha_dir, exist_ok=True)
        self.peers = PeerWatch(self._reactor, self.paths.peers_file,
                               lambda: self.raw_reader is not None)
        self.releaser.discard()  # nobody waits for it any more
        pid = stop_stale(os.path.join(self.paths.runtime_dir, "keepalived.pid"),
                         self.paths.conf)
        if pid:
            log.warn("stopped keepalived {pid} left over from an earlier sidecar", pid=pid)
        if files.read_role(self.paths.role_file) == "leader":
            # Left by a sidecar that did not stop cleanly (killed, host
            # crash): no keepalived runs here now, so this node holds no VIP.
            self._write_role("follower", "sidecar starting, keepalived not running yet")
        self._write_status()
        if self._make_raw_reader is not None:
            try:
                self.raw_reader = self._make_raw_reader(self._advert)
                self.raw_reader.startReading()
            except OSError as e:
                log.warn("cannot listen to VRRP adverts ({error}); peer status and the "
                         "lone-node rule of the readiness check are unavailable "
                         "(needs CAP_NET_RAW)", error=e)
        for interval, what, fn in (
                (self.netinfo_interval, "the network interface refresh", self.refresh_netinfo),
                (self.poll_interval, "the HA configuration poll", self.poll),
                (self.release_interval, "the VIP handover poll", self.poll_release)):
            loop = looping_call(what, fn, self._reactor)
            loop.start(interval, now=True)
            self._loops.append(loop)
        log.info("sentinel-keepalived: watching {config} (idle until HA is enabled)",
                 config=self.paths.config_file)

    @defer.inlineCallbacks
    def stopService(self):
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        was_enabled = self.settings is not None
        yield self.keepalived.stop()
        if was_enabled:
            # The VIP is gone from this node: it must not think it leads.
            self._write_role("follower", "sidecar stopping")
        try:
            self._teardown()
        except OSError as e:  # the release track file: written again at the next enable
            log.warn("sidecar stopping: {error}", error=e)
        if self.raw_reader is not None:
            self.raw_reader.close()
            self.raw_reader = None
        self._write_status()

    # -- config.json -> keepalived ------------------------------------------

    def poll(self):
        self._flush_role()
        self._check_fifo()
        if self._busy:
            return None
        problem = None
        try:  # never blocks (a FIFO in its place would hang the sidecar)
            raw = files.read_bytes(self.paths.config_file) or b""
        except files.FileFormatError as e:
            problem = str(e)
            raw = problem.encode()
        now = self._reactor.seconds()
        if raw == self._seen and (self._retry_at is None or now < self._retry_at):
            return None
        self._retry_at = None
        self._seen = raw
        if problem is not None:
            self._problem(problem)
            return None
        self._busy = True
        d = defer.ensureDeferred(self._apply_file(raw))
        d.addErrback(self._apply_failed)
        d.addBoth(self._not_busy)
        return d

    def _apply_failed(self, failure):
        """Applying stopped half-way (a file could not be written: disk full,
        a directory in its place): say so and try again, as for a bad file --
        else HA would stay off until config.json changes."""
        if failure.check(OSError):
            e = failure.value
            where = e.filename2 or e.filename
            self._problem(f"cannot update {where} ({e.strerror})" if where else str(e))
        else:
            log.failure("applying the HA configuration failed", failure)
            self._problem(f"applying the HA configuration failed: {failure.getErrorMessage()}")

    def _not_busy(self, result):
        self._busy = False
        return result

    async def _apply_file(self, raw):
        try:
            loaded = load_config(raw, self.paths)
        except ConfigProblem as e:
            self._problem(str(e))
            return
        if loaded is None:
            await self._disable()
        else:
            await self._enable(*loaded)

    RETRY_AFTER = 10.0

    def _problem(self, problem):
        """Keep what runs now; say why; try the same file again later."""
        if problem != self.status.get("lastError"):
            log.error("HA configuration not applied: {problem}", problem=problem)
        self.status["lastError"] = problem
        self._retry_at = self._reactor.seconds() + self.RETRY_AFTER
        self._write_status()

    async def _disable(self):
        self.status["lastError"] = None
        running = self.settings is not None or self.keepalived.wanted
        if running:
            self.settings = None  # from here on, notifications are ignored
            self.applied_text = None
            await self.keepalived.stop()
            self._teardown()
            log.info("keepalived: disabled (HA is off); keepalived stopped")
        self._role_pending = None  # the file goes: no role to write
        self.status.update(haEnabled=False, vrrpState=None, role=None, summary=None,
                           roleFileError=None, roleFileMismatch=None)
        # Also when nothing ran: a role file left from before this sidecar
        # started (HA disabled meanwhile) would override the configured role
        # for good.
        if files.remove_file(self.paths.role_file):
            log.info("role file {path} removed: the cluster role applies again",
                     path=self.paths.role_file)
        self._write_status()

    def _teardown(self):
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        if self.fifo is not None:
            self.fifo.close()
            self.fifo = None
        self._close_retired_fifo()
        self.peers.clear()
        self.releaser.reset()  # last: it may fail (disk full); the rest is done

    async def _enable(self, settings, password, daemon):
        try:
            text = render(settings, password, render_paths(self.paths, self._check_command, settings, daemon))
        except RenderError as e:
            self._problem(f"cannot render keepalived.conf: {e}")
            return
        self._check_role_file_place(daemon)
        self._track_daemon(daemon)
        self.peers.configure(settings.vrid, password, self._own_addresses())
        if text == self.applied_text and self.keepalived.wanted:
            return
        candidate = self.paths.conf + ".new"
        files.atomic_write(candidate, text, 0o600)
        try:
            ok, errors = await self.keepalived.config_test(candidate)
        except NotRunnable as e:
            self._problem(str(e))
            return
        if not ok:
            self._problem("keepalived rejected the configuration: " + " / ".join(errors[-5:]))
            return
        os.replace(candidate, self.paths.conf)
        first = not self.keepalived.wanted
        self.settings, self.applied_text = settings, text
        self.status.update(haEnabled=True, lastError=None, summary=describe(settings))
        if first:
            if self.fifo is None:
                self.fifo = self._make_fifo(self.paths.fifo, self._notified)
                self.fifo.startReading()
            self.keepalived.on_exit = self._keepalived_exited
            self.releaser.reset()
            self.keepalived.start(self.paths.conf)
            log.info("keepalived: enabled {summary}", summary=describe(settings))
        else:
            self.keepalived.reload()
            log.info("keepalived: reloaded {summary}", summary=describe(settings))
        self._write_status()

    def _check_role_file_place(self, daemon):
        """The daemon said where it reads the role file: if it is not where
        this sidecar writes it, the daemon never learns who holds the VIP.
        keepalived runs anyway (the VIP still moves and DNS is served);
        this is said in the log, status.json and the daemon's /api/health."""
        problem = files.role_file_mismatch(daemon.get("roleFile"), self.paths.role_file)
        if problem != self.status["roleFileMismatch"]:
            if problem:
                log.error("role file mismatch: {problem}", problem=problem)
            else:
                log.info("role file {path} is the one the daemon reads",
                         path=self.paths.role_file)
            self.status["roleFileMismatch"] = problem
            self._write_status()

    def _check_fifo(self):
        """The notify FIFO was removed or replaced (a cleanup of the runtime
        directory, a second sidecar on it): keepalived would write its next
        state changes (after a reload or restart) where nobody reads, and
        the role file would stop following the VIP.  Make a new one and
        have keepalived reopen it."""
        if self.fifo is None or self.fifo.intact():
            return
        try:
            os.makedirs(self.paths.runtime_dir, mode=0o700, exist_ok=True)
            fresh = self._make_fifo(self.paths.fifo, self._notified)
        except OSError as e:
            if str(e) != self._fifo_error:  # once, not at every poll
                log.error("the notify FIFO {path} was removed or replaced and cannot be "
                          "made again ({error}); trying again every second",
                          path=self.paths.fifo, error=e)
            self._fifo_error = str(e)
            return
        self._fifo_error = None
        # The old one is read on until keepalived has reopened the path (its
        # last changes may still come there; closed, keepalived's writes
        # would fail): it is closed at the next replacement or teardown.
        self._close_retired_fifo()
        self._retired_fifo, self.fifo = self.fifo, fresh
        fresh.startReading()
        self.keepalived.reload()
        log.warn("the notify FIFO {path} was removed or replaced: made a new one and "
                 "reloaded keepalived so its state changes reach the role file",
                 path=self.paths.fifo)

    def _close_retired_fifo(self):
        if self._retired_fifo is not None:
            self._retired_fifo.close(unlink=False)  # the path is the new FIFO
            self._retired_fifo = None

    def _keepalived_exited(self, code):
        if self.settings is not None:
            self.status["vrrpState"] = None
            self._write_role("follower", "keepalived exited")

    # -- daemon liveness -> track file -----------------------------------------

    def _track_daemon(self, daemon):
        target = (daemon["host"], daemon["port"])
        if self.watch is not None and (self.watch.host, self.watch.port) == target:
            return
        if self.watch is not None:
            self.watch.stop()
        self._write_alive(False)  # until the first connection proves otherwise
        self.watch = self._make_watch(daemon["host"], daemon["port"], self._alive_changed)
        self.watch.start()

    def _alive_changed(self, alive):
        self._write_alive(alive)
        if alive:
            log.info("daemon is up ({host}:{port})", host=self.watch.host, port=self.watch.port)
        else:
            log.warn("daemon is down ({host}:{port}): leaving the VRRP election",
                     host=self.watch.host, port=self.watch.port)

    def _write_alive(self, alive):
        files.atomic_write(self.paths.alive_file, b"0\n" if alive else b"1\n", 0o644)
        self.status["daemonAlive"] = alive
        self._write_status()

    # -- notifications -> role file ------------------------------------------------

    def _notified(self, line):
        parsed = parse_line(line)
        if parsed is None or self.settings is None:
            return
        state, role = parsed
        self.status["vrrpState"] = state
        self._write_role(role, f"VRRP state {state}")

    def _write_role(self, role, why):
        """Write the role file; if that fails (disk full, a directory in its
        place) say so once and try again at every poll: the daemon keeps its
        previous role until the file can be written."""
        self.status["role"] = role
        self._role_pending = (role, why)
        self._flush_role()
        self._write_status()

    def _flush_role(self):
        if self._role_pending is None:
            return
        role, why = self._role_pending
        path = self.paths.role_file
        try:
            files.write_role(path, role)
        except OSError as e:
            problem = (f"cannot write the role file {path} ({e.strerror}): the daemon keeps "
                       f"its previous role until it can say {role}")
            if problem != self.status["roleFileError"]:
                log.error("{why}: {problem}; trying again every {s:g} s", why=why,
                          problem=problem, s=self.poll_interval)
                self.status["roleFileError"] = problem
                self._write_status()
            return
        self._role_pending = None
        if self.status["roleFileError"] is not None:
            self.status["roleFileError"] = None
            self._write_status()
        log.info("{why}: role file says {role}", why=why, role=role)

    # -- peers and netinfo ----------------------------------------------------

    def _advert(self, advert):
        if self.peers is not None and self.peers.observe(advert):
            self.releaser.advert(advert.source, advert.priority)

    def poll_release(self):
        self.releaser.poll()

    def _own_addresses(self):
        own = set()
        for iface in (self.netinfo or {}).get("interfaces") or ():
            own.update(a.split("/")[0] for a in iface.get("addresses") or ())
        return own

    COMMAND_TIMEOUT = 10.0  # seconds for one `ip` command

    def _run(self, argv):
        """run_command with a deadline: a hung `ip` (a wedged netlink, a stuck
        mount namespace) is killed (the Deferred is cancelled), or the
        refresh would never finish and netinfo.json never be written again."""
        d = self._run_command(argv)
        d.addTimeout(self.COMMAND_TIMEOUT, self._reactor)

        def timed_out(failure):
            failure.trap(defer.TimeoutError)
            raise RuntimeError(f"`{' '.join(argv)}` did not answer within "
                               f"{self.COMMAND_TIMEOUT:g} s (killed)")
        return d.addErrback(timed_out)

    @defer.inlineCallbacks
    def refresh_netinfo(self):
        try:
            addr = yield self._run(netinfo.ADDR_COMMAND)
            route = yield self._run(netinfo.ROUTE_COMMAND)
            info = netinfo.build(addr.decode("utf-8", "replace"),
                                 route.decode("utf-8", "replace"), self._reactor.seconds())
        except Exception as e:
            log.warn("cannot detect network interfaces: {error}", error=e)
            info = {"detectedAt": self._reactor.seconds(), "interfaces": [],
                    "defaultRoute": None, "suggestedInterface": None, "error": str(e)}
        self.netinfo = info
        if self.peers is not None:
            self.peers.set_own(self._own_addresses())
        files.write_json(self.paths.netinfo_file, info, 0o644)

    def _write_status(self):
        doc = dict(self.status)
        doc["release"] = self.releaser.state
        doc["keepalived"] = self.keepalived.state
        doc["updatedAt"] = self._reactor.seconds()
        doc["keepalivedPid"] = self.keepalived.handle.pid if self.keepalived.handle else None
        doc["keepalivedRestarts"] = self.keepalived.restarts
        try:
            files.write_json(self.paths.status_file, doc, 0o644)
        except OSError as e:
            log.warn("cannot write {path}: {error}", path=self.paths.status_file, error=e)
