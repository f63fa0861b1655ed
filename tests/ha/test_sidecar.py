"""The keepalived sidecar's behaviour, with a fake keepalived and a Clock."""

import json
import os
import signal
import stat
import tempfile

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha import files
from sentinel.ha.keepalived import Keepalived
from sentinel.ha.layout import SidecarPaths
from sentinel.ha.release import write_request
from sentinel.ha.sidecar import Sidecar
from sentinel.ha.vrrpwatch import Advert, auth_bytes
from tests.ha.fakes import FakeFifo, FakeHandle, FakeLauncher, FakeWatch, LogCapture, write_config

IP_ADDR = json.dumps([{"ifname": "eth0", "flags": ["UP"], "link_type": "ether",
                       "addr_info": [{"family": "inet", "local": "198.18.0.2",
                                      "prefixlen": 24}]}]).encode()


class FakeRawReader:
    def startReading(self):
        pass

    def close(self):
        pass


class SidecarTests(SynchronousTestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="sentinel-sidecar-")
        self.paths = SidecarPaths(data_dir=self.data,
                                  role_file=os.path.join(self.data, "sentinel", "cluster_role"),
                                  runtime_dir=os.path.join(self.data, "run"))
        self.clock = Clock()
        self.launcher = FakeLauncher()
        self.keepalived = Keepalived(self.clock, self.launcher, "/usr/sbin/keepalived",
                                     self.paths.runtime_dir)
        self.watches, self.fifos = [], []
        self.log = LogCapture(self)

        def run_command(argv):
            return defer.succeed(IP_ADDR if "addr" in argv else b"[]")

        def make_watch(host, port, cb):
            self.watches.append(FakeWatch(host, port, cb))
            return self.watches[-1]

        def make_fifo(path, cb):
            self.fifos.append(FakeFifo(path, cb))
            return self.fifos[-1]

        self.sidecar = Sidecar(self.clock, self.paths, self.keepalived,
                               check_command=("/usr/bin/python3", "-I", "-S", "/x/check.py"),
                               run_command=run_command, make_watch=make_watch,
                               make_fifo=make_fifo)
        self.sidecar.startService()
        self.addCleanup(lambda: self.sidecar.running and self.sidecar.stopService())

    def status(self):
        return files.read_json(self.paths.status_file)

    def tick(self, seconds=1.0):
        self.clock.advance(seconds)

    def enable(self, **fields):
        write_config(self.data, **fields)
        self.tick()

    def notify(self, state):
        self.fifos[-1].on_line(f'INSTANCE "sentinel" {state} 120')

    def read(self, path):
        with open(path) as f:
            return f.read()

    # -- idle ---------------------------------------------------------------------

    def test_idle_until_enabled(self):
        self.tick(5)
        self.assertEqual(self.launcher.spawned, [])
        self.assertFalse(self.status()["haEnabled"])
        self.assertEqual(self.status()["keepalived"], "stopped")
        info = files.read_json(self.paths.netinfo_file)
        self.assertEqual(info["suggestedInterface"], "eth0")

    def test_disabled_config_stays_idle(self):
        write_config(self.data, enabled=False)
        self.tick(3)
        self.assertEqual(self.launcher.spawned, [])

    def test_a_hung_ip_command_is_killed_and_the_refresh_goes_on(self):
        """`ip` that never answers (wedged netlink): the command is cancelled
        (the real runner kills it) after COMMAND_TIMEOUT, netinfo.json says
        why, and the next refresh runs as usual -- before, the refresh never
        finished and netinfo.json was never written again."""
        calls = []

        def hung(argv):
            d = defer.Deferred(lambda d: calls.append(("cancelled", argv)))
            calls.append(("run", argv))
            return d

        self.sidecar._run_command = hung
        self.tick(30)  # the next refresh starts and hangs
        self.tick(self.sidecar.COMMAND_TIMEOUT)
        self.assertEqual(calls[-1][0], "cancelled")
        info = files.read_json(self.paths.netinfo_file)
        self.assertIn("did not answer within 10 s", info["error"])
        self.assertEqual(info["interfaces"], [])
        self.sidecar._run_command = lambda argv: defer.succeed(
            IP_ADDR if "addr" in argv else b"[]")
        self.tick(30)
        self.assertEqual(files.read_json(self.paths.netinfo_file)["suggestedInterface"], "eth0")

    def test_netinfo_refreshes_periodically(self):
        first = files.read_json(self.paths.netinfo_file)["detectedAt"]
        self.tick(30)
        self.assertEqual(files.read_json(self.paths.netinfo_file)["detectedAt"], first + 30)

    def test_a_failing_netinfo_refresh_does_not_stop_it(self):
        first = files.read_json(self.paths.netinfo_file)["detectedAt"]
        os.remove(self.paths.netinfo_file)
        os.mkdir(self.paths.netinfo_file)  # cannot be replaced by a file
        self.tick(30)
        self.assertEqual(len(self.flushLoggedErrors(IsADirectoryError)), 1)
        os.rmdir(self.paths.netinfo_file)
        self.tick(30)
        self.assertEqual(files.read_json(self.paths.netinfo_file)["detectedAt"], first + 60)

    # -- enabling -------------------------------------------------------------------

    def test_enable_renders_and_starts_keepalived(self):
        self.enable()
        [ka] = self.launcher.spawned
        self.assertEqual(ka.argv[0], "/usr/sbin/keepalived")
        self.assertIn(self.paths.conf, ka.argv)
        self.assertIn("--dont-fork", ka.argv)
        conf = self.read(self.paths.conf)
        self.assertIn("auth_pass s3cret", conf)
        self.assertIn("198.18.0.53/24 dev eth0", conf)
        self.assertIn("--url http://127.0.0.1:8080/api/cluster/ready", conf)
        self.assertEqual(stat.S_IMODE(os.stat(self.paths.conf).st_mode), 0o600)
        self.assertIn("keepalived: enabled interface=eth0 vip=198.18.0.53/24 vrid=53 "
                      "priority=120", self.log.text())
        self.assertEqual(self.status()["keepalived"], "running")
        self.assertTrue(self.status()["haEnabled"])

    def test_daemon_liveness_drives_the_track_file(self):
        self.enable(daemon_host="198.18.0.2", daemon_port=18080)
        [watch] = self.watches
        self.assertEqual((watch.host, watch.port, watch.started), ("198.18.0.2", 18080, True))
        self.assertEqual(self.read(self.paths.alive_file), "1\n")  # unknown = down
        watch.on_change(True)
        self.assertEqual(self.read(self.paths.alive_file), "0\n")
        watch.on_change(False)
        self.assertEqual(self.read(self.paths.alive_file), "1\n")
        self.assertIn("daemon is down", self.log.text())

    def test_change_is_applied_with_a_reload_not_a_restart(self):
        self.enable()
        self.enable(priority=110)
        [ka] = self.launcher.spawned
        self.assertEqual(ka.signals, ["HUP"])
        self.assertIn("priority 110", self.read(self.paths.conf))
        self.assertIn("keepalived: reloaded", self.log.text())

    def test_rewriting_the_same_settings_does_nothing(self):
        self.enable()
        self.enable()  # new file (new seal, new nonce), same meaning
        [ka] = self.launcher.spawned
        self.assertEqual(ka.signals, [])

    def test_rejected_config_keeps_the_running_one_and_retries(self):
        self.enable()
        good = self.read(self.paths.conf)
        self.launcher.config_test_status = 5
        self.enable(priority=111)
        self.assertEqual(self.read(self.paths.conf), good)
        self.assertEqual(self.launcher.spawned[0].signals, [])
        self.assertIn("bad thing", self.status()["lastError"])
        self.launcher.config_test_status = 0
        self.tick(11)  # retried without the file changing
        self.assertIn("priority 111", self.read(self.paths.conf))
        self.assertIsNone(self.status()["lastError"])

    def test_a_file_that_cannot_be_written_is_retried_until_keepalived_runs(self):
        """Enabling fails half-way (the track file cannot be written: disk
        full, a directory in its place): one line, and it is tried again --
        HA must not stay off until someone edits the settings."""
        os.makedirs(self.paths.alive_file)
        self.enable()
        self.assertEqual(self.launcher.spawned, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        error = self.status()["lastError"]
        self.assertIn(f"cannot update {self.paths.alive_file} (Is a directory)", error)
        self.assertEqual(self.log.text().count(error), 1)
        self.tick(self.sidecar.RETRY_AFTER)  # still in the way: not logged again
        self.assertEqual(self.log.text().count(error), 1)
        os.rmdir(self.paths.alive_file)
        self.tick(self.sidecar.RETRY_AFTER)
        self.assertEqual(len(self.launcher.spawned), 1)
        self.assertEqual(self.status()["keepalived"], "running")
        self.assertIsNone(self.status()["lastError"])

    def test_keepalived_missing_is_one_clear_line_and_retried(self):
        """Not installed (or not executable): say so and what to do, and
        start it once it is there."""
        spawn = self.launcher.spawn

        def missing(argv, on_line):
            raise FileNotFoundError(2, "No such file or directory")

        self.launcher.spawn = missing
        self.enable()
        self.assertEqual(self.flushLoggedErrors(), [])
        error = self.status()["lastError"]
        self.assertEqual(error, "cannot run keepalived (/usr/sbin/keepalived: No such file or "
                                "directory); install it, or set --keepalived / "
                                "SENTINEL_KEEPALIVED to its path")
        self.assertEqual(self.log.text().count(error), 1)
        self.launcher.spawn = spawn
        self.tick(self.sidecar.RETRY_AFTER)
        self.assertEqual(self.status()["keepalived"], "running")

    def test_a_config_test_that_hangs_is_killed_and_retried(self):
        """keepalived --config-test never ends: the sidecar must not wait for
        it for good (every later change would be stuck behind it)."""
        spawn, hung = self.launcher.spawn, []

        def hanging(argv, on_line):
            if "--config-test" in argv:
                hung.append(FakeHandle(list(argv), 999))
                return hung[-1]
            return spawn(argv, on_line)

        self.launcher.spawn = hanging
        self.enable()
        self.tick(self.keepalived.CONFIG_TEST_TIMEOUT - 1)
        self.assertEqual(hung[0].signals, [])
        self.tick(1)
        self.assertEqual(hung[0].signals, ["KILL"])
        hung[0].exit(None)
        self.assertIn("did not finish within 30 s", self.status()["lastError"])
        self.launcher.spawn = spawn
        self.tick(self.sidecar.RETRY_AFTER)
        self.assertEqual(self.status()["keepalived"], "running")

    def without_hanging(self):
        """A blocking read fails the test (after 5 s) instead of hanging it."""
        def expired(signum, frame):
            raise AssertionError("the sidecar blocked on a read")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(5)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.alarm, 0)

    def test_a_fifo_in_place_of_a_shared_file_does_not_hang_the_sidecar(self):
        """config.json or release.json as a FIFO (nobody writes into it): the
        sidecar must not wait on it -- it would stop reading keepalived's
        notifications, and the role file would no longer follow the VIP."""
        self.enable()
        self.notify("MASTER")
        self.without_hanging()
        os.mkfifo(self.paths.release_request)
        self.tick(0.2)
        self.assertFalse(os.path.exists(self.paths.release_request))
        os.remove(self.paths.config_file)
        os.mkfifo(self.paths.config_file)
        self.tick(1)
        self.assertIn("config.json: not a regular file", self.status()["lastError"])
        self.assertEqual(self.status()["keepalived"], "running")  # what runs, runs
        self.notify("BACKUP")
        self.assertEqual(self.read(self.paths.role_file), "follower\n")

    def test_broken_config_file_keeps_state(self):
        self.enable()
        with open(self.paths.config_file, "w") as f:
            f.write("{ not json")
        self.tick()
        self.assertEqual(self.launcher.spawned[0].signals, [])
        self.assertIn("not valid JSON", self.status()["lastError"])
        self.assertTrue(self.keepalived.wanted)

    def test_unsealing_with_another_nodes_key_fails_clearly(self):
        write_config(self.data, enabled=False)  # creates this node's key
        other = tempfile.mkdtemp()
        os.replace(write_config(other), self.paths.config_file)  # sealed under another key
        self.tick()
        self.assertEqual(self.launcher.spawned, [])
        self.assertIn("cannot unseal", self.status()["lastError"])

    def test_missing_node_key_says_which_directory(self):
        write_config(self.data)
        os.unlink(os.path.join(self.data, "node.key"))
        self.tick()
        self.assertEqual(self.launcher.spawned, [])
        self.assertIn("same data directory", self.status()["lastError"])

    # -- roles ------------------------------------------------------------------------

    def test_notifications_write_the_role_file(self):
        self.enable()
        for state, role in (("BACKUP", "follower"), ("MASTER", "leader"),
                            ("FAULT", "follower"), ("MASTER", "leader"), ("STOP", "follower")):
            self.notify(state)
            self.assertEqual(self.read(self.paths.role_file), role + "\n")
            self.assertEqual(self.status()["vrrpState"], state)

    def test_a_role_file_that_cannot_be_written_is_one_line_and_retried(self):
        """Disk full, or a directory in place of the role file: the VRRP state
        change is not lost -- it is written as soon as it can be."""
        self.enable()
        self.notify("MASTER")
        os.remove(self.paths.role_file)
        os.mkdir(self.paths.role_file)
        self.notify("BACKUP")
        self.notify("FAULT")
        self.tick(3)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.log.text().count("cannot write the role file"), 1)
        self.assertIn("Is a directory", self.status()["roleFileError"])
        self.assertEqual(self.status()["vrrpState"], "FAULT")
        os.rmdir(self.paths.role_file)
        self.tick(1)
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.assertIsNone(self.status()["roleFileError"])
        self.assertIn("VRRP state FAULT: role file says follower", self.log.text())

    def test_a_daemon_reading_another_role_file_is_reported(self):
        """The daemon and the sidecar configured with different role-file
        paths (CLUSTER_ROLE_FILE set for one container only): VIP changes
        would never reach the daemon.  keepalived runs anyway (the VIP still
        moves), and the mismatch is logged once and put in status.json,
        from where the daemon's /api/health shows it."""
        elsewhere = os.path.join(self.data, "other", "cluster_role")
        self.enable(role_file=elsewhere)
        self.assertEqual(len(self.launcher.spawned), 1)
        problem = self.status()["roleFileMismatch"]
        self.assertIn(f"the daemon reads its role from {elsewhere} but this sidecar writes "
                      f"it to {self.paths.role_file}", problem)
        self.assertIn("CLUSTER_ROLE_FILE", problem)
        self.assertEqual(self.status()["roleFile"], self.paths.role_file)
        self.enable(role_file=elsewhere, priority=130)  # another config, same problem
        self.assertEqual(self.log.text().count("role file mismatch"), 1)
        self.enable(role_file=self.paths.role_file)
        self.assertIsNone(self.status()["roleFileMismatch"])

    def test_the_same_role_file_through_another_mount_point_is_no_mismatch(self):
        """The daemon's container mounts the data volume elsewhere: another
        path, but the same directory (device and inode) and name."""
        os.makedirs(os.path.dirname(self.paths.role_file), exist_ok=True)
        mount = tempfile.mkdtemp(prefix="sentinel-mount-")
        os.symlink(self.data, os.path.join(mount, "data"))
        seen_by_daemon = os.path.join(mount, "data", "sentinel", "cluster_role")
        self.enable(role_file=seen_by_daemon)
        self.assertIsNone(self.status()["roleFileMismatch"])
        other_name = os.path.join(mount, "data", "sentinel", "role")
        self.enable(role_file=other_name)
        self.assertIn(other_name, self.status()["roleFileMismatch"])

    def test_shutdown_completes_when_the_role_file_cannot_be_written(self):
        self.enable()
        self.notify("MASTER")
        os.remove(self.paths.role_file)
        os.mkdir(self.paths.role_file)
        d = self.sidecar.stopService()
        self.launcher.spawned[0].exit(0)
        self.successResultOf(d)
        self.assertTrue(self.fifos[-1].closed)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_shutdown_completes_when_the_release_track_file_cannot_be_written(self):
        self.enable()
        os.remove(self.paths.release_file)
        os.mkdir(self.paths.release_file)
        d = self.sidecar.stopService()
        self.launcher.spawned[0].exit(0)
        self.successResultOf(d)
        self.assertTrue(self.fifos[-1].closed)
        self.assertTrue(self.watches[-1].stopped)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.status()["keepalived"], "stopped")

    def test_a_role_file_left_while_ha_was_disabled_is_removed_at_start(self):
        """HA turned off while the sidecar was down (or it was killed): the
        old override must not pin the node to that role for good."""
        self.sidecar.stopService()
        files.atomic_write(self.paths.role_file, "follower\n")
        write_config(self.data, enabled=False)
        self.sidecar.startService()
        self.assertFalse(os.path.exists(self.paths.role_file))
        self.assertEqual(self.launcher.spawned, [])

    def test_a_stale_leader_role_file_steps_down_at_start(self):
        """The sidecar was killed while MASTER: the new one runs no keepalived
        yet (here: it cannot apply the settings), so it holds no VIP and must
        not leave the daemon acting as leader next to the real holder."""
        self.sidecar.stopService()
        files.atomic_write(self.paths.role_file, "leader\n")
        files.atomic_write(self.paths.config_file, b"{not json")
        self.sidecar.startService()
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.assertIn("not valid JSON", self.status()["lastError"])

    def test_disabling_with_a_directory_in_place_of_the_role_file_is_retried(self):
        self.enable()
        self.notify("MASTER")
        os.remove(self.paths.role_file)
        os.mkdir(self.paths.role_file)
        self.enable(enabled=False)
        self.launcher.spawned[0].exit(0)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertIn(f"cannot update {self.paths.role_file}", self.status()["lastError"])
        self.assertFalse(self.status()["haEnabled"])
        os.rmdir(self.paths.role_file)
        files.atomic_write(self.paths.role_file, "leader\n")
        self.tick(self.sidecar.RETRY_AFTER)
        self.assertFalse(os.path.exists(self.paths.role_file))
        self.assertIsNone(self.status()["lastError"])

    def test_a_removed_notify_fifo_is_made_again_and_keepalived_reopens_it(self):
        """keepalived opens the FIFO's path at every reload and restart (and
        creates one if it is gone): a removed or replaced FIFO must be made
        again, else the role file stops following the VIP."""
        self.enable()
        [ka] = self.launcher.spawned
        old = self.fifos[-1]
        old.replaced = True
        self.tick(1)
        self.assertEqual(len(self.fifos), 2)
        self.assertTrue(self.fifos[-1].reading)
        self.assertEqual(ka.signals, ["HUP"])
        self.assertEqual(self.log.text().count("notify FIFO"), 1)
        # Until keepalived has reopened the path, it may still write to the
        # old one: read on, not closed (its writes would fail).
        self.assertFalse(old.closed)
        old.on_line('INSTANCE "sentinel" BACKUP 120')
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.notify("MASTER")  # heard on the new FIFO
        self.assertEqual(self.read(self.paths.role_file), "leader\n")
        self.tick(3)
        self.assertEqual((len(self.fifos), ka.signals), (2, ["HUP"]))
        self.enable(enabled=False)
        ka.exit(0)
        self.assertEqual((old.closed, old.unlinked), (True, False))
        self.assertTrue(self.fifos[-1].closed)

    def test_a_notify_fifo_that_cannot_be_made_again_is_one_line_and_retried(self):
        self.enable()
        make_fifo, calls = self.sidecar._make_fifo, []

        def failing(path, cb):
            calls.append(path)
            if len(calls) <= 3:
                raise OSError(28, "No space left on device")
            return make_fifo(path, cb)

        self.sidecar._make_fifo = failing
        self.fifos[-1].replaced = True
        for _ in range(3):
            self.tick(1)
        self.assertEqual(self.log.text().count("cannot be made again"), 1)
        self.tick(1)
        self.assertEqual((len(calls), len(self.fifos)), (4, 2))
        self.assertEqual(self.launcher.spawned[0].signals, ["HUP"])

    def test_disable_stops_keepalived_and_removes_the_role_file(self):
        self.enable()
        self.notify("MASTER")
        self.enable(enabled=False)
        [ka] = self.launcher.spawned
        self.assertEqual(ka.signals, ["TERM"])
        ka.exit(0)
        self.assertFalse(os.path.exists(self.paths.role_file))
        self.notify("STOP")  # late line from the stopping keepalived: ignored
        self.assertFalse(os.path.exists(self.paths.role_file))
        self.assertEqual(self.status()["keepalived"], "stopped")
        self.assertIn("keepalived: disabled", self.log.text())
        self.assertTrue(self.watches[0].stopped)

    def test_enable_again_after_disable(self):
        self.enable()
        self.enable(enabled=False)
        self.launcher.spawned[0].exit(0)
        self.enable()
        self.assertEqual(len(self.launcher.spawned), 2)

    def test_stop_escalates_to_kill(self):
        self.enable()
        self.enable(enabled=False)
        self.tick(5)
        self.assertEqual(self.launcher.spawned[0].signals, ["TERM", "KILL"])

    def test_unexpected_exit_restarts_with_backoff(self):
        self.enable()
        self.notify("MASTER")
        self.launcher.spawned[0].exit(1)
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.assertEqual(self.status()["keepalived"], "restarting")
        self.tick(1)
        self.assertEqual(len(self.launcher.spawned), 2)
        self.launcher.spawned[1].exit(1)
        self.tick(1)
        self.assertEqual(len(self.launcher.spawned), 2)  # now waits 2 s
        self.tick(1)
        self.assertEqual(len(self.launcher.spawned), 3)
        self.flushLoggedErrors()

    def test_a_failed_restart_is_tried_again(self):
        """spawn itself fails (no fork: a process limit): the restarts go on."""
        self.enable()
        spawn, fails = self.launcher.spawn, [OSError(11, "Resource temporarily unavailable")]

        def failing_once(argv, on_line):
            if fails:
                raise fails.pop()
            return spawn(argv, on_line)

        self.launcher.spawn = failing_once
        self.launcher.spawned[0].exit(1)
        self.tick(1)  # the restart fails: tried again 2 s later
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual((len(self.launcher.spawned), self.status()["keepalived"]),
                         (1, "restarting"))
        self.tick(1)
        self.assertEqual(len(self.launcher.spawned), 1)
        self.tick(1)
        self.assertEqual(len(self.launcher.spawned), 2)
        self.assertEqual(self.keepalived.state, "running")
        self.flushLoggedErrors()

    def test_sidecar_shutdown_stops_keepalived_and_steps_down(self):
        self.enable()
        self.notify("MASTER")
        d = self.sidecar.stopService()
        [ka] = self.launcher.spawned
        self.assertEqual(ka.signals, ["TERM"])
        ka.exit(0)
        self.successResultOf(d)
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.assertTrue(self.fifos[0].closed)

    # -- handing the VIP over on request (POST /api/cluster/ha/release) ---------------

    def request_release(self, rid="r1", at=None, delay=0.0):
        write_request(self.paths.release_request, rid,
                      self.clock.seconds() if at is None else at, delay)
        self.tick(0.2)

    def advert(self, source="198.18.0.3", priority=110, password="s3cret"):
        self.sidecar._advert(Advert(source, 2, 53, priority, 1.0, auth_bytes(password)))

    def test_release_leaves_the_election_until_the_peer_holds_the_vip(self):
        self.enable()
        self.notify("MASTER")
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.request_release(delay=1.0)
        self.assertFalse(os.path.exists(self.paths.release_request))  # acted on once
        self.assertEqual(self.status()["release"]["state"], "scheduled")
        self.tick(0.7)  # 0.9 s after the request: the daemon's answer goes out first
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.advert()  # adverts before the release count for nothing
        self.tick(0.2)
        self.assertEqual(self.read(self.paths.release_file), "1\n")  # -> FAULT, priority 0
        self.assertEqual(self.status()["release"]["state"], "releasing")
        self.notify("FAULT")
        self.assertEqual(self.read(self.paths.role_file), "follower\n")
        self.advert(password="other")  # not one of ours: not a taker
        self.advert(priority=0)  # leaving, not taking
        self.tick(1)
        self.assertEqual(self.read(self.paths.release_file), "1\n")
        self.advert()  # the peer is MASTER now
        self.tick(0.9)
        self.assertEqual(self.read(self.paths.release_file), "1\n")  # settling
        self.tick(0.1)
        self.assertEqual(self.read(self.paths.release_file), "0\n")  # back as BACKUP
        release = self.status()["release"]
        self.assertEqual((release["id"], release["state"], release["to"]),
                         ("r1", "released", "198.18.0.3"))

    def test_release_nobody_takes_resumes_after_the_hold(self):
        self.enable()
        self.notify("MASTER")
        self.request_release()
        self.tick(3.7)
        self.assertEqual(self.read(self.paths.release_file), "1\n")
        self.tick(0.4)
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.assertEqual(self.status()["release"]["state"], "not-taken")
        self.assertIn("no other node took the VIP", self.log.text())

    def test_release_takes_part_again_even_if_the_track_file_fails_once(self):
        """Writing 0 fails (here: a directory in its place): the node must
        not stay out of the election; it tries again every second."""
        self.enable()
        self.notify("MASTER")
        self.request_release()
        self.assertEqual(self.read(self.paths.release_file), "1\n")
        os.remove(self.paths.release_file)
        os.mkdir(self.paths.release_file)
        self.tick(4)  # nobody took the VIP: writing 0 fails
        self.assertEqual(len(self.flushLoggedErrors(IsADirectoryError)), 1)
        self.assertEqual(self.status()["release"]["state"], "releasing")
        os.rmdir(self.paths.release_file)
        self.tick(1)
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.assertEqual(self.status()["release"]["state"], "not-taken")
        self.request_release("r2")  # and the next request is not "already running"
        self.assertEqual(self.status()["release"]["state"], "releasing")

    def test_release_refused_when_the_track_file_cannot_be_written(self):
        self.enable()
        self.notify("MASTER")
        os.remove(self.paths.release_file)
        os.mkdir(self.paths.release_file)
        self.request_release()
        release = self.status()["release"]
        self.assertEqual(release["state"], "refused")
        self.assertIn("cannot write", release["reason"])
        os.rmdir(self.paths.release_file)
        self.request_release("r2")
        self.assertEqual(self.status()["release"]["state"], "releasing")

    def test_release_refused_unless_master_and_fresh(self):
        self.enable()
        self.notify("BACKUP")
        self.request_release("r1")
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        release = self.status()["release"]
        self.assertEqual((release["id"], release["state"]), ("r1", "refused"))
        self.assertIn("does not hold the VIP", release["reason"])
        self.notify("MASTER")
        self.request_release("r2", at=self.clock.seconds() - 11)
        self.assertEqual(self.status()["release"]["state"], "refused")
        self.assertIn("stale", self.status()["release"]["reason"])
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        # Still MASTER when the delay is over?  Else nothing to release.
        self.request_release("r3", delay=1.0)
        self.assertEqual(self.status()["release"]["state"], "scheduled")
        self.notify("BACKUP")
        self.tick(1)
        self.assertEqual((self.status()["release"]["id"], self.status()["release"]["state"]),
                         ("r3", "refused"))
        self.assertEqual(self.read(self.paths.release_file), "0\n")

    def test_release_request_that_is_not_valid_is_dropped(self):
        self.enable()
        self.notify("MASTER")
        now = self.clock.seconds()
        for raw in (b"{", b"[]", b'{"id": "a b", "requestedAt": 1}',
                    b'{"id": "x", "requestedAt": true}',
                    b'{"id": "x", "requestedAt": %f, "notBefore": %f}' % (now, now + 60),
                    b'{"id": "x", "requestedAt": %f, "notBefore": %f}' % (now, now - 1)):
            with open(self.paths.release_request, "wb") as f:
                f.write(raw)
            self.tick(0.2)
            self.assertFalse(os.path.exists(self.paths.release_request))
            self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.assertIsNone(self.status()["release"])

    def test_a_directory_in_place_of_the_request_is_one_line_and_polling_goes_on(self):
        """A directory where the request file goes cannot be removed: one
        clear line (no traceback, not one per poll), and once it is gone the
        polls act on requests again."""
        self.enable()
        self.notify("MASTER")
        os.mkdir(self.paths.release_request)
        self.tick(0.2)
        self.tick(0.2)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.log.text().count("is a directory: VIP hand-over requests "
                                               "cannot be received"), 1)
        os.rmdir(self.paths.release_request)
        self.request_release()
        self.assertFalse(os.path.exists(self.paths.release_request))
        self.assertEqual(self.read(self.paths.release_file), "1\n")
        self.assertIn("VIP hand-over requests are received", self.log.text())

    def test_a_directory_in_place_of_the_request_does_not_stop_the_start(self):
        """The sidecar starts (and then runs keepalived) with a directory
        where release.json goes: only hand-over requests are unavailable."""
        self.sidecar.stopService()
        os.mkdir(self.paths.release_request)
        self.sidecar.startService()
        self.assertTrue(self.sidecar.running)
        self.assertIn("is a directory: VIP hand-over requests cannot be received",
                      self.log.text())
        self.enable()
        self.assertEqual(self.status()["keepalived"], "running")

    def test_disabling_during_a_release_cancels_it(self):
        self.enable()
        self.notify("MASTER")
        self.request_release()
        self.enable(enabled=False)
        self.launcher.spawned[0].exit(0)
        self.assertEqual(self.read(self.paths.release_file), "0\n")
        self.assertEqual(self.status()["release"]["state"], "cancelled")
        self.tick(5)  # no timer left behind
        self.assertEqual(self.status()["release"]["state"], "cancelled")

    def test_a_request_left_from_before_a_restart_is_dropped(self):
        self.sidecar.stopService()
        write_request(self.paths.release_request, "old", self.clock.seconds())
        self.sidecar.startService()
        self.assertFalse(os.path.exists(self.paths.release_request))

    def test_a_directory_in_place_of_peers_json_stops_nothing(self):
        """peers.json only informs: one line, and the sidecar starts, runs
        keepalived and handles adverts all the same."""
        self.sidecar.stopService()
        os.mkdir(self.paths.peers_file)
        self.sidecar._make_raw_reader = lambda receive: FakeRawReader()
        self.sidecar.startService()
        self.enable()
        self.assertEqual(self.status()["keepalived"], "running")
        for _ in range(3):
            self.advert()
            self.tick(1)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(self.log.text().count(f"cannot update {self.paths.peers_file}"), 1)
        os.rmdir(self.paths.peers_file)
        self.advert()
        self.assertIn("198.18.0.3", files.read_json(self.paths.peers_file)["peers"])
        self.assertIn("is written again", self.log.text())

    def test_peers_are_remembered_across_reloads_and_restarts(self):
        """A BACKUP never advertises: the holder must remember whom it has heard."""
        self.enable()
        self.advert("198.18.0.3", 110)
        self.enable(priority=100)  # reload: a new peer table
        self.assertIn("198.18.0.3", self.sidecar.peers.table.peers)
        d = self.sidecar.stopService()
        self.launcher.spawned[0].exit(0)
        self.successResultOf(d)
        files.write_json(self.paths.peers_file, {"vrid": 53, "peers": {
            "198.18.0.3": {"lastSeen": 5.0, "priority": 110, "advertInterval": 1.0},
            "not-an-ip": {"lastSeen": 5.0, "priority": 110},
            "198.18.0.4": {"lastSeen": "x", "priority": 110}}})
        self.sidecar.startService()
        self.enable(priority=90)
        self.assertEqual(list(self.sidecar.peers.table.peers), ["198.18.0.3"])
        self.assertEqual(self.sidecar.peers.table.peers["198.18.0.3"]["lastSeen"], 5.0)
