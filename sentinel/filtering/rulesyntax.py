"""
The pattern syntax of manual rules and rewrites.

    example.com      the name and every subdomain        (TREE)
    *.example.com    subdomains only, not example.com    (SUBDOMAINS)
    |example.com|    exactly example.com, nothing below  (EXACT)

Names are case-insensitive, a trailing dot is ignored and internationalised
names are stored as punycode.
"""

import attr

from sentinel.filtering.names import BadName, normalize, to_key

TREE = "tree"
SUBDOMAINS = "subdomains"
EXACT = "exact"


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Pattern:
    scope: str  # TREE, SUBDOMAINS or EXACT
    name: str  # normalized
    key: bytes

    @property
    def text(self):
        """The canonical spelling."""
        if self.scope == SUBDOMAINS:
            return "*." + self.name
        if self.scope == EXACT:
            return "|" + self.name + "|"
        return self.name


def parse_pattern(text, allow_exact=True):
    """Parse a rule pattern; raises L{BadName} with a message for the user."""
    raw = text.strip()
    scope = TREE
    if allow_exact and len(raw) > 2 and raw.startswith("|") and raw.endswith("|"):
        scope, raw = EXACT, raw[1:-1]
    elif raw.startswith("*."):
        scope, raw = SUBDOMAINS, raw[2:]
    if "*" in raw or "|" in raw:
        raise BadName(
            f"{text!r}: use 'example.com' (name and subdomains), '*.example.com' "
            f"(subdomains only) or '|example.com|' (exactly this name)"
        )
    name = normalize(raw)
    return Pattern(scope, name, to_key(name))
