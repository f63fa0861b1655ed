import signal
import tracemalloc
import zlib

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

    def test_pathological_lines_parse_in_linear_time(self):
        # A run of spaces before a comment, and an address-like field of
        # colons: the patterns tried them from each character of the run
        # (quadratic: minutes for these 200 KB lines, the child parser was
        # killed at its 5-minute limit and the whole list failed).  The
        # alarm only turns such a hang into a failure.
        def hang(signum, frame):
            raise AssertionError("parsing a 200 KB line did not finish in 60 s")

        previous = signal.signal(signal.SIGALRM, hang)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        signal.alarm(60)
        self.addCleanup(signal.alarm, 0)
        p = parse("0.0.0.0" + " " * 200_000 + "ads.example.com # a comment\n"
                  + ":" * 200_000 + "! tracker.example.com\n"
                  + "good.example.org" + "\t" * 200_000 + "x #\n")
        signal.alarm(0)
        self.assertEqual(names(p.blocked), ["ads.example.com"])
        self.assertEqual(p.skipped, 2)  # the colons, and two names on a plain line

    def test_lines_are_split_piece_by_piece(self):
        text = "a.example.com\r\nb.example.com\rc.example.com\n\n\x0bd.example.com\u2028" \
               "e.example.com\x85f.example.com\n" * 50
        for piece in (1, 7, 64, listformat.LINES_PIECE):
            self.assertEqual(list(listformat._lines(text, piece)), text.splitlines())
        self.assertEqual(list(listformat._lines("x" * 1000, 10)), ["x" * 1000])

    def test_millions_of_comments_are_not_held_at_once(self):
        # 1M short comment lines (3 MB): as one list of lines they took
        # ~60 MB (a 64 MB list of them: ~1.6 GB in the parser child).
        text = "#x\n" * 1_000_000
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        p = parse(text)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        self.assertEqual((p.blocked, p.skipped), ([], 0))
        self.assertLess(peak, 16 * 1024 * 1024)


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

    def test_decoding_in_bounded_pieces(self):
        # Steps of one piece each hold the GIL briefly; 1 MiB steps held it
        # for 20-25 ms, and the final slicing of a 2M-name list as long.
        self.patch(listformat, "DECODE_PIECE", 512)
        p = parse("\n".join([f"host{i}.example.com" for i in range(3000)]
                            + [f"@@||ok{i}.example.com^" for i in range(500)]))
        blocked, allowed = decode(encode(p), pieces=True)
        for part in blocked + allowed:
            self.assertLessEqual(len(part), 512 // 4)  # keys of at least 4 bytes each
        self.assertEqual([k for part in blocked for k in part], p.blocked)
        self.assertEqual([k for part in allowed for k in part], p.allowed)
        self.assertEqual(decode(encode(p)), (p.blocked, p.allowed))

    def test_a_name_too_long_is_refused(self):
        blob = listformat._HEADER.pack(listformat.MAGIC, 1, 0) + zlib.compress(b"a" * 5000)
        with self.assertRaises(ListFormatError):
            decode(blob)

    def test_empty_list(self):
        self.assertEqual(decode(encode(parse(""))), ([], []))

    def test_corrupt_blobs_are_refused(self):
        blob = encode(parse("a.example.com\nb.example.com"))
        for bad in [b"", b"XXXX" + blob[4:], blob[:-3], blob[:12] + b"garbage"]:
            with self.assertRaises(ListFormatError):
                decode(bad)


class HostileTextTests(SynchronousTestCase):
    """What real (and broken) lists contain: each line is judged on its own."""

    def test_trailing_comments_may_hold_any_text(self):
        p = parse("0.0.0.0 ads.example.com # ads | tracking\n"
                  "track.example.net  # costs $$$ ^_^\n||abp.example.org^ # note\n")
        self.assertEqual(names(p.blocked),
                         ["abp.example.org", "ads.example.com", "track.example.net"])
        self.assertEqual(p.skipped, 0)

    def test_one_bad_name_does_not_drop_the_rest_of_a_hosts_line(self):
        p = parse("0.0.0.0 a.example.com bad!name b.example.com localhost c.example.com\n")
        self.assertEqual(names(p.blocked), ["a.example.com", "b.example.com", "c.example.com"])
        self.assertEqual(p.skipped, 1)
        self.assertEqual(p.examples, ("0.0.0.0 a.example.com bad!name b.example.com "
                                      "localhost c.example.com",))

    def test_addresses_are_not_names(self):
        p = parse("1.2.3.4\n0.0.0.0 10.0.0.1\n||192.168.1.1^\nok.example.com\n")
        self.assertEqual(names(p.blocked), ["ok.example.com"])
        self.assertEqual(p.skipped, 3)

    def test_badfilter_takes_back_the_lists_own_rule(self):
        p = parse("||ads.example.com^\n||keep.example.com^\n||ads.example.com^$badfilter\n"
                  "@@||ok.example.com^\n@@||ok.example.com^$badfilter\n"
                  "||x.example.com^$badfilter,third-party\n")
        self.assertEqual(names(p.blocked), ["keep.example.com"])
        self.assertEqual(p.allowed, [])
        self.assertEqual(p.skipped, 1)  # a badfilter for a rule we skip anyway

    def test_one_stray_byte_does_not_change_the_other_names(self):
        body = "bücher.example\n0.0.0.0 ads.example.com\n".encode() + b"bad\xff.example\n"
        p = parse(listformat.text_of(body))
        self.assertEqual(names(p.blocked), ["ads.example.com", "xn--bcher-kva.example"])
        self.assertEqual(p.skipped, 1)

    def test_bom_crlf_cr_nul_and_case(self):
        body = (b"\xef\xbb\xbfA.Example.COM.\r\nb.example.com\rc.example.com\n"
                b"d.exa\x00mple.com\n")
        p = parse(listformat.text_of(body))
        self.assertEqual(names(p.blocked), ["a.example.com", "b.example.com", "c.example.com"])
        self.assertEqual(p.skipped, 1)

    def test_html_pages_are_recognised(self):
        for page in (b"<!DOCTYPE html>\n<html><title>\nparked.example\n</title>",
                     b"\xef\xbb\xbf  \n<html lang=en>", b"<!-- x -->\n<HEAD>", b"<?xml v?>",
                     b"<h1>404 Not Found</h1>\nnginx.example\n"):
            self.assertTrue(listformat.looks_like_html(page), page)
        for text in (b"# <html>\n0.0.0.0 a.example\n", b"||html.example^", b"<<<", b"< 3"):
            self.assertFalse(listformat.looks_like_html(text), text)
