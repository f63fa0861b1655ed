"""The role file and its watcher (real INotify on a temporary directory)."""

import os
import shutil
import tempfile

from twisted.internet import inotify, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.cluster import rolefile
from sentinel.cluster.rolefile import RoleFileWatcher, parse_role, read_role_file


class ParseTests(SynchronousTestCase):
    def test_exact_words_only(self):
        self.assertEqual(parse_role(b"leader"), "leader")
        self.assertEqual(parse_role(b"  follower\n"), "follower")
        self.assertEqual(parse_role(b"\tleader\r\n"), "leader")
        self.assertEqual(parse_role(b"\xef\xbb\xbfleader\r\n"), "leader")  # a BOM (Notepad)
        for other in (b"", b"\n", b"Leader", b"master", b"leader follower", b"lead",
                      b"\xff\xfe", b"leader\x00"):
            self.assertIsNone(parse_role(other), other)

    def test_missing_file_is_no_override_and_no_problem(self):
        d = _scratch(self)
        self.assertEqual(read_role_file(os.path.join(d, "nope")), (None, None))
        self.assertEqual(read_role_file(os.path.join(d, "nope", "deeper")), (None, None))

    def test_every_bad_file_names_its_problem(self):
        d = _scratch(self)
        path = os.path.join(d, "role")

        def problem_of(content):
            with open(path, "wb") as f:
                f.write(content)
            role, problem = read_role_file(path)
            self.assertIsNone(role, content)
            return problem

        self.assertIn("is empty", problem_of(b""))
        self.assertIn("is empty", problem_of(b" \r\n"))
        self.assertIn("says 'lead'", problem_of(b"lead"))  # a partial write
        self.assertIn("says 'MASTER'", problem_of(b"MASTER\n"))
        self.assertIn("is not text", problem_of(b"\xff\xfe\x00garbage"))
        self.assertIn("larger than 256 bytes", problem_of(b"leader" + b" " * 1000))
        self.assertIn("larger than", problem_of(os.urandom(1 << 20)))  # huge: not read whole
        long_word = problem_of(b"x" * 200)
        self.assertLess(len(long_word), 120)  # one readable line, not the whole content
        for problem in (problem_of(b"lead"), problem_of(b"")):
            self.assertIn("expected exactly 'leader' or 'follower'", problem)
        self.assertEqual(read_role_file(d), (None, "is a directory, not a file"))

    def test_fifo_is_refused_without_blocking(self):
        # Pointing CLUSTER_ROLE_FILE at the sidecar's notify FIFO must not hang
        # the reactor (and DNS) waiting for a writer.
        path = os.path.join(_scratch(self), "fifo")
        os.mkfifo(path)
        role, problem = read_role_file(path)
        self.assertIsNone(role)
        self.assertIn("not a regular file", problem)

    def test_unreadable_file(self):
        path = os.path.join(_scratch(self), "role")
        with open(path, "w") as f:
            f.write("leader")

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        self.patch(rolefile.os, "open", denied)  # as root, chmod 000 would not stop us
        self.assertEqual(read_role_file(path), (None, "cannot be read (Permission denied)"))


class FakeNotifier:
    def __init__(self):
        self.watches = []
        self.lost = False

    def startReading(self):
        pass

    def watch(self, path, mask, callbacks):
        self.watches.append((path, callbacks))

    def loseConnection(self):
        self.lost = True

    def fire(self, name):
        from twisted.python.filepath import FilePath

        path, callbacks = self.watches[-1]
        for cb in callbacks:
            cb(None, FilePath(os.path.join(path.path, name).encode()), inotify.IN_MODIFY)


class DebounceTests(SynchronousTestCase):
    def setUp(self):
        self.dir = _scratch(self)
        self.path = os.path.join(self.dir, "sub", "cluster_role")
        self.clock = Clock()
        self.seen = []
        self.notifier = FakeNotifier()
        self.watcher = RoleFileWatcher(self.path, self.seen.append, self.clock,
                                       lambda: self.notifier)
        self.watcher.startService()
        self.addCleanup(self.watcher.stopService)

    def write(self, text):
        with open(self.path, "w") as f:
            f.write(text)

    def test_creates_directory_and_watches_it(self):
        self.assertTrue(os.path.isdir(os.path.dirname(self.path)))
        self.assertEqual(self.notifier.watches[0][0].path, os.path.dirname(self.path))

    def test_in_place_write_does_not_flap(self):
        self.write("leader")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE)
        self.assertEqual(self.seen, ["leader"])
        # keepalived rewrites in place: truncate (event), then write (event).
        self.write("")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE / 2)
        self.write("leader\n")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE)
        self.assertEqual(self.seen, ["leader"])

    def test_other_files_ignored(self):
        self.write("follower")
        self.notifier.fire("something-else")
        self.clock.advance(1)
        self.assertEqual(self.seen, [])

    def test_bad_content_keeps_the_last_good_role_and_is_reported(self):
        self.write("leader\n")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE)
        self.assertEqual(self.seen, ["leader"])
        self.assertIsNone(self.watcher.describe_problem())
        for bad in ("lead", "", "garbage\n", "\x00\x01"):
            self.write(bad)
            self.notifier.fire("cluster_role")
            self.clock.advance(rolefile.DEBOUNCE)
            self.assertEqual(self.seen, ["leader"], bad)  # never flipped
            self.assertEqual(self.watcher.current, "leader")
            self.assertTrue(self.watcher.describe_problem().startswith(
                f"role file {self.path} "), bad)
        self.clock.advance(rolefile.RECHECK)  # the periodic re-read changes nothing either
        self.assertEqual(self.seen, ["leader"])
        self.write("follower\r\n")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE)
        self.assertEqual(self.seen, ["leader", "follower"])
        self.assertIsNone(self.watcher.describe_problem())

    def test_bad_file_at_start_means_no_override(self):
        self.watcher.stopService()
        self.write("master")
        seen = []
        watcher = RoleFileWatcher(self.path, seen.append, self.clock, None)
        watcher.startService()
        self.addCleanup(watcher.stopService)
        self.assertEqual(seen, [])  # the configured role applies
        self.assertIsNone(watcher.current)
        self.assertIn("says 'master'", watcher.describe_problem())

    def test_deleting_a_bad_file_clears_the_problem_and_the_override(self):
        self.write("leader")
        self.notifier.fire("cluster_role")
        self.clock.advance(rolefile.DEBOUNCE)
        self.write("junk")
        self.clock.advance(rolefile.RECHECK)
        self.assertIsNotNone(self.watcher.problem)
        os.unlink(self.path)  # HA disabled: the sidecar removes the file
        self.clock.advance(rolefile.RECHECK)
        self.assertEqual(self.seen, ["leader", None])
        self.assertIsNone(self.watcher.problem)

    def test_periodic_reread_catches_lost_events(self):
        self.write("follower")
        self.clock.advance(rolefile.RECHECK)
        self.assertEqual(self.seen, ["follower"])

    def test_a_failing_role_change_is_applied_again_and_rereads_go_on(self):
        fails = [RuntimeError("a bug")]

        def on_role(role):
            if fails:
                raise fails.pop()
            self.seen.append(role)

        self.watcher._on_role = on_role
        self.write("follower")
        self.clock.advance(rolefile.RECHECK)
        self.assertEqual((self.seen, len(self.flushLoggedErrors(RuntimeError))), ([], 1))
        self.clock.advance(rolefile.RECHECK)  # the next re-read applies it again
        self.assertEqual(self.seen, ["follower"])
        self.write("leader")
        self.clock.advance(rolefile.RECHECK)
        self.assertEqual(self.seen, ["follower", "leader"])

    def test_stop_cancels_timers_and_closes(self):
        self.notifier.fire("cluster_role")
        self.watcher.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.notifier.lost)


class RealINotifyTests(TestCase):
    """keepalived's three ways of changing the file, seen for real."""

    def setUp(self):
        self.dir = _scratch(self)
        self.path = os.path.join(self.dir, "cluster_role")
        self.seen = []
        self.waiting = None
        self.watcher = RoleFileWatcher(self.path, self._got, reactor,
                                       lambda: inotify.INotify(reactor))
        self.watcher.startService()
        self.addCleanup(self.watcher.stopService)

    def _got(self, role):
        self.seen.append(role)
        if self.waiting is not None:
            d, self.waiting = self.waiting, None
            d.callback(role)

    def next_role(self):
        self.waiting = Deferred()
        self.waiting.addTimeout(2, reactor)  # far below the 5 s periodic re-read
        return self.waiting

    async def test_write_rename_delete(self):
        self.assertTrue(self.watcher.watching)
        d = self.next_role()
        with open(self.path, "w") as f:
            f.write("leader\n")
        self.assertEqual(await d, "leader")

        d = self.next_role()
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("follower")
        os.rename(tmp, self.path)
        self.assertEqual(await d, "follower")

        d = self.next_role()
        os.unlink(self.path)
        self.assertIsNone(await d)
        self.assertEqual(self.seen, ["leader", "follower", None])
        await deferLater(reactor, 0, lambda: None)


    async def test_directory_removed_and_recreated(self):
        """The role file's directory is removed (a volume re-created, a
        cleanup script) and comes back with a new role file: the watcher
        must see it within keepalived's failover time, not at the next
        5 s safety re-read."""
        d = self.next_role()
        with open(self.path, "w") as f:
            f.write("leader\n")
        self.assertEqual(await d, "leader")
        d = self.next_role()
        shutil.rmtree(self.dir)
        self.assertIsNone(await d)
        d = self.next_role()
        os.mkdir(self.dir)
        with open(self.path, "w") as f:
            f.write("follower\n")
        self.assertEqual(await d, "follower")
        self.assertTrue(self.watcher.watching)  # watched again: an edit is seen
        d = self.next_role()
        with open(self.path, "w") as f:
            f.write("leader\n")
        self.assertEqual(await d, "leader")
        self.assertEqual(self.seen, ["leader", None, "follower", "leader"])


def _scratch(testcase):
    directory = tempfile.mkdtemp(prefix="sentinel-role-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    return directory
