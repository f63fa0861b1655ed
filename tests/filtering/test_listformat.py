from twisted.trial.unittest import SynchronousTestCase

from sentinel.filtering import listformat
from sentinel.filtering.listformat import ListFormatError, decode, encode, parse
from sentinel.filtering.names import key_to_name


def names(keys):
    return sorted(key_to_name(k) for k in keys)


class ParseTests(SynchronousTestCase):
    def test_hosts_file(self):
        p = parse(
            "# hosts\n127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n"
            "0.0.0.0 0.0.0.0\n0.0.0.0 ads.example.com tracker.example.com  # two\n"
            "127.0.0.1\tTabbed.Example.org\n"
        )
        self.assertEqual(names(p.blocked),
                         ["ads.example.com", "tabbed.example.org", "tracker.example.com"])
        self.assertEqual((p.allowed, p.skipped), ([], 0))

    def test_plain_domain_list(self):
        p = parse("ads.example.com\n*.wild.example.net\nexample.org # why\n\n")
        self.assertEqual(names(p.blocked), ["ads.example.com", "example.org", "wild.example.net"])

    def test_adblock_rules_exceptions_and_skips(self):
        p = parse(
            "[Adblock Plus 2.0]\n! Title: x\n||ads.example.com^\n||imp.example.com^$important\n"
            "@@||good.example.com^\n||opt.example.com^$third-party\n"
            "example.com##.banner\n/banner/*\n||example.com/path^\n|http://x.com^\n"
        )
        self.assertEqual(names(p.blocked), ["ads.example.com", "imp.example.com"])
        self.assertEqual(names(p.allowed), ["good.example.com"])
        self.assertEqual(p.skipped, 5)
        self.assertEqual(len(p.examples), listformat.MAX_EXAMPLES)
        self.assertIn("||opt.example.com^$third-party", p.examples)

    def test_idn_and_invalid_lines(self):
        p = parse("bücher.de\n0.0.0.0 münchen.example\nnot valid\nbad..name\ncom\n")
        self.assertEqual(names(p.blocked), ["xn--bcher-kva.de", "xn--mnchen-3ya.example"])
        self.assertEqual(p.skipped, 3)

    def test_duplicates_collapse(self):
        p = parse("a.example.com\nA.example.com.\n||a.example.com^\n0.0.0.0 a.example.com\n")
        self.assertEqual(names(p.blocked), ["a.example.com"])


class BlobTests(SynchronousTestCase):
    def test_round_trip_and_determinism(self):
        p = parse("b.example.com\na.example.com\n@@||c.example.com^\n")
        blob = encode(p)
        self.assertEqual(blob, encode(parse("a.example.com\nb.example.com\n@@||c.example.com^")))
        self.assertEqual(decode(blob), (p.blocked, p.allowed))

    def test_streaming_decode_across_pieces(self):
        p = parse("\n".join(f"host{i}.example{i % 7}.com" for i in range(5000)))
        blocked, allowed = decode(encode(p), convert=len, chunk=97)
        self.assertEqual(blocked, [len(k) for k in p.blocked])
        self.assertEqual(allowed, [])

    def test_empty_list(self):
        self.assertEqual(decode(encode(parse(""))), ([], []))

    def test_corrupt_blobs_are_refused(self):
        blob = encode(parse("a.example.com\nb.example.com"))
        for bad in [b"", b"XXXX" + blob[4:], blob[:-3], blob[:12] + b"garbage"]:
            with self.assertRaises(ListFormatError):
                decode(bad)
