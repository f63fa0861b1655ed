"""The list parser child process (what the daemon uses for downloads)."""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from sentinel.filtering.listformat import decode
from sentinel.filtering.names import key_to_name
from sentinel.filtering.parsing import ParseError, in_child


class ChildTests(TestCase):
    timeout = 60

    async def test_child_parses_and_encodes(self):
        body = "0.0.0.0 ads.example.com\n@@||ok.ads.example.com^\nbad line here\n".encode()
        summary, blob = await in_child(reactor)(body)
        self.assertEqual((summary.domains, summary.allows, summary.skipped), (1, 1, 1))
        self.assertEqual(summary.examples, ("bad line here",))
        blocked, allowed = decode(blob)
        self.assertEqual([key_to_name(k) for k in blocked + allowed],
                         ["ads.example.com", "ok.ads.example.com"])

    async def test_child_failure_is_an_error_not_a_crash(self):
        parse = in_child(reactor, timeout=0.001)  # killed before it can answer
        with self.assertRaises(ParseError):
            await parse(b"a.example.com\n" * 1000)

    def test_garbled_child_output_is_an_error_not_a_hang(self):
        """A child that exits 0 but writes something else (say, a stray print
        from the environment) fails the parse; the refresh does not wait
        forever (which held every other list's refresh behind it)."""
        from twisted.internet.defer import Deferred
        from twisted.internet.error import ProcessDone
        from twisted.python.failure import Failure

        from sentinel.filtering.parsing import _Child

        for out in (b"\x00\x00\x00\x05{oops", b"\x00\x00\x00\x02{}", b"\xff\xff\xff\xffxx"):
            done = Deferred()
            child = _Child(b"", done)
            child.outReceived(out)
            child.processEnded(Failure(ProcessDone(0)))
            self.failureResultOf(done, ParseError)

    async def test_the_child_is_what_the_oom_killer_takes_first(self):
        """Parsing a hostile list may need GBs: if memory runs out, the parser
        is killed (a recorded failure), not the DNS daemon."""
        import os
        import sys

        from twisted.internet.utils import getProcessOutput

        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        out = await getProcessOutput(sys.executable, [
            "-c", "from sentinel.filtering.parsing import step_aside; step_aside(); "
                  "import os; print(open('/proc/self/oom_score_adj').read().strip(), os.nice(0))"],
            env=dict(os.environ, PYTHONPATH=root), errortoo=True)
        self.assertEqual(out.split()[0], b"1000")
        self.assertGreaterEqual(int(out.split()[1]), 10)
