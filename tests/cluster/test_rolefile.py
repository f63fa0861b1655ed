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
        for other in (b"", b"\n", b"Leader", b"master", b"leader follower", b"lead",
                      b"\xff\xfe", b"leader\x00"):
            self.assertIsNone(parse_role(other), other)

    def test_missing_unreadable_or_huge_file_is_no_override(self):
        d = _scratch(self)
        self.assertIsNone(read_role_file(os.path.join(d, "nope")))
        self.assertIsNone(read_role_file(d))  # a directory
        path = os.path.join(d, "role")
        with open(path, "w") as f:
            f.write("leader" + " " * 1000)
        self.assertIsNone(read_role_file(path))


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

    def test_periodic_reread_catches_lost_events(self):
        self.write("follower")
        self.clock.advance(rolefile.RECHECK)
        self.assertEqual(self.seen, ["follower"])

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


def _scratch(testcase):
    directory = tempfile.mkdtemp(prefix="sentinel-role-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    return directory
