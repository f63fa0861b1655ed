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
