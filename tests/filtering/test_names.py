from twisted.trial.unittest import SynchronousTestCase

from sentinel.filtering.names import BadName, key_of, key_to_name, normalize, suffix_keys, \
    wire_to_text
from sentinel.filtering.rulesyntax import EXACT, SUBDOMAINS, TREE, parse_pattern


class NamesTests(SynchronousTestCase):
    def test_normalize_lowercases_and_drops_trailing_dot(self):
        self.assertEqual(normalize(" Ads.Example.COM. "), "ads.example.com")

    def test_idn_becomes_punycode(self):
        self.assertEqual(normalize("Bücher.de"), "xn--bcher-kva.de")
        self.assertEqual(normalize("例え.テスト"), "xn--r8jz45g.xn--zckzah")

    def test_invalid_names_are_refused_with_a_reason(self):
        for bad in ["", ".", "a..b", "exa mple.com", "a" * 64 + ".com", "x/y.com",
                    ("a" * 60 + ".") * 5 + "com", "http://x.com"]:
            with self.assertRaises(BadName, msg=bad) as e:
                normalize(bad)
            self.assertTrue(str(e.exception))

    def test_keys_are_wire_format_without_root(self):
        self.assertEqual(key_of("ads.example.com"), b"\x03ads\x07example\x03com")
        self.assertEqual(key_to_name(b"\x03ads\x07example\x03com"), "ads.example.com")

    def test_suffix_keys_most_specific_first(self):
        self.assertEqual(
            [key_to_name(k) for k in suffix_keys(key_of("a.b.example.com"))],
            ["a.b.example.com", "b.example.com", "example.com", "com"])

    def test_wire_to_text_escapes_odd_bytes_and_never_raises(self):
        self.assertEqual(wire_to_text(b"\x03a.b\x02\x00z\x00"), "a\\.b.\\000z")
        self.assertEqual(wire_to_text(b"\x00"), ".")
        self.assertEqual(wire_to_text(b"\x05ab"), "ab")  # truncated label


class PatternTests(SynchronousTestCase):
    def test_three_scopes(self):
        self.assertEqual(parse_pattern("Example.com").scope, TREE)
        p = parse_pattern("*.example.com")
        self.assertEqual((p.scope, p.name, p.text), (SUBDOMAINS, "example.com", "*.example.com"))
        p = parse_pattern("|example.com|")
        self.assertEqual((p.scope, p.text), (EXACT, "|example.com|"))

    def test_other_wildcards_are_refused(self):
        for bad in ["ex*ample.com", "*example.com", "a.*.com", "|a.com", "||a.com^"]:
            with self.assertRaises(BadName, msg=bad):
                parse_pattern(bad)
