"""
The compiled policy snapshot the DNS server asks for every query: pure,
I/O-free, immutable once built (only internal memo dicts grow).

    policy.decide(client_ip, qname_wire, qtype) -> Decision

The client's L{Profile} is found by address (exact address first, then the
most specific network; memoized per address).  A profile then decides in
this order (docs/FILTERING.md, "How a query is decided"):

1. the client's kill switch or an active block-all schedule -> BLOCK
2. local rewrites -> REWRITE
3. protection paused -> PASS
4. the client's own rules, then global rules (in each, allow beats block)
5. blocklists (exceptions beat blocks) -> ALLOW / BLOCK
6. shadow-mode lists -> PASS with ``shadow`` set

Names are matched as wire-format keys (see L{sentinel.filtering.names}):
the qname without its terminating zero, then each parent, sliced at label
boundaries and looked up in dicts.  Nothing here parses text, touches the
clock or allocates per query beyond those slices.
"""

import ipaddress

from zope.interface import implementer

from sentinel.dns.decision import ALLOW, BLOCK, PASS, REWRITE, Decision, IPolicy

MEMO_LIMIT = 65536
# Decisions remembered per profile, by name (real traffic repeats names a
# lot: a remembered decision costs one dict lookup instead of ~1 us of
# suffix matching).  Bounded (cleared when full) so random names cannot
# grow it; ~150 bytes per entry.
DECIDED_LIMIT = 20000
# Blocklist names are kept as 60-bit hashes of their keys, not as bytes: a
# small int costs 32 bytes where a bytes object costs ~64, which is what
# keeps 1M domains well under 200 MB.  A false match needs a 60-bit
# collision (about 1 in 10^12 per lookup with 1M names).
HASH_MASK = (1 << 60) - 1


def name_hash(key):
    return hash(key) & HASH_MASK


# The merged names are split into shards by the TOP bits of their hash (a
# dict finds a slot by the low bits: shards by low bits would crowd every
# key of a shard into a fraction of its slots).  A dict that grows past a
# power of two is re-hashed in one C call that holds the GIL -- 80-150 ms
# for one dict of 1-2M names, during which DNS waits; a shard of at most
# ~SHARD_TARGET names re-hashes in about a millisecond.  The lookup indexes
# a tuple of SLOTS entries by ``h >> SHARD_SHIFT`` whatever the number of
# shards: with fewer shards (small lists), neighbouring slots share a dict.
SLOT_BITS = 10
SLOTS = 1 << SLOT_BITS
SHARD_SHIFT = 60 - SLOT_BITS
SHARD_TARGET = 8192


def shard_bits(names):
    """How many top hash bits pick the shard for ``names`` names."""
    bits = 0
    while bits < SLOT_BITS and (names >> bits) > SHARD_TARGET:
        bits += 1
    return bits


def new_shards(names):
    """(slots, dicts): SLOTS slots over 2**shard_bits(names) empty dicts."""
    bits = shard_bits(names)
    dicts = tuple({} for _ in range(1 << bits))
    spread = SLOT_BITS - bits
    return tuple(dicts[i >> spread] for i in range(SLOTS)), dicts

# Slots of a rule-table entry (see rule_table): rule ids, 0 when absent.
ALLOW_EXACT, ALLOW_TREE, ALLOW_SUB, BLOCK_EXACT, BLOCK_TREE, BLOCK_SUB = range(6)


@implementer(IPolicy)
class Policy:
    """The snapshot: client lookup plus one L{Profile} per client."""

    def __init__(self, default, exact=None, networks=(), revision=0, info=None):
        self.default = default
        self._exact = dict(exact or {})  # canonical address text -> Profile
        self._networks = tuple(networks)  # ((ip_network, Profile), ...) most specific first
        self._memo = {}
        self.revision = revision
        self.info = info or {}

    def decide(self, client_ip, qname, qtype):
        profile = self._memo.get(client_ip)
        if profile is None:
            profile = self.profile_for(client_ip)
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[client_ip] = profile
        # Profile.decide's first step, inline: most queries repeat a name
        # the profile has decided already (one Python call less per query).
        decided = profile._decided.get(qname)
        if decided is not None:
            return decided
        return profile.decide_new(qname, qtype)

    def profile_for(self, client_ip):
        profile = self._exact.get(client_ip)
        if profile is not None:
            return profile
        try:
            addr = ipaddress.ip_address(client_ip.split("%", 1)[0])
        except ValueError:
            return self.default
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        profile = self._exact.get(str(addr))
        if profile is not None:
            return profile
        for network, profile in self._networks:
            if addr.version == network.version and addr in network:
                return profile
        return self.default


def rule_table(rules):
    """
    rules: iterable of (rule_id, action, Pattern) -> {key: [6 rule ids]}.
    When several rules land in one slot the lowest id wins.
    """
    table = {}
    for rule_id, action, pattern in sorted(rules, key=lambda r: -r[0]):
        base = 0 if action == "allow" else 3
        slot = base + {"exact": 0, "tree": 1, "subdomains": 2}[pattern.scope]
        entry = table.setdefault(pattern.key, [0] * 6)
        entry[slot] = rule_id
    return {k: tuple(v) for k, v in table.items()}


def _match_rules(table, sufs):
    """-> rule id (>0 block, <0 allow) or 0.  Allow beats block."""
    block = 0
    first = True
    for s in sufs:
        hit = table.get(s)
        if hit is not None:
            if first:
                allow = hit[ALLOW_EXACT] or hit[ALLOW_TREE]
                deny = hit[BLOCK_EXACT] or hit[BLOCK_TREE]
            else:
                allow = hit[ALLOW_TREE] or hit[ALLOW_SUB]
                deny = hit[BLOCK_TREE] or hit[BLOCK_SUB]
            if allow:
                return -allow
            if deny and not block:
                block = deny
        first = False
    return block


class MergedLists:
    """
    The blocklists one profile uses, merged: name_hash(key) -> list id
    (positive: blocked by that list; negative: an exception from it), in
    shards: ``h = name_hash(key); slots[h >> SHARD_SHIFT].get(h)``.
    ``dicts`` are the distinct shards, ``count`` the names in all of them.
    """

    __slots__ = ("slots", "dicts", "count", "has_allows", "ids")

    def __init__(self, slots, dicts, has_allows, ids):
        self.slots = slots
        self.dicts = dicts
        self.count = sum(map(len, dicts))
        self.has_allows = has_allows
        self.ids = ids  # the list ids merged in

    @classmethod
    def of(cls, names, has_allows=False, ids=()):
        """From one {name hash: list id} dict (small sets: tests, benchmarks)."""
        slots, dicts = new_shards(len(names))
        for h, v in names.items():
            slots[h >> SHARD_SHIFT][h] = v
        return cls(slots, dicts, has_allows, ids)

    def get(self, h):
        """The value for name hash ``h``, or None."""
        return self.slots[h >> SHARD_SHIFT].get(h)

    def match(self, sufs):
        slots = self.slots
        shift = SHARD_SHIFT
        found = 0
        for s in sufs:
            h = hash(s) & HASH_MASK
            v = slots[h >> shift].get(h)
            if v is not None:
                if v < 0:
                    return v
                if not found:
                    found = v
                    if not self.has_allows:
                        return found
        return found


EMPTY_LISTS = MergedLists(*new_shards(0), False, ())


class Rewrites:
    """
    Local rewrites: exact names and ``*.name`` wildcards.  Values are
    L{RewriteEntry}s; the most specific match wins (exact, then the longest
    wildcard).
    """

    __slots__ = ("exact", "wild")

    def __init__(self, exact, wild):
        self.exact = exact
        self.wild = wild

    def match(self, sufs):
        entry = self.exact.get(sufs[0])
        if entry is not None:
            return entry
        wild = self.wild
        for s in sufs[1:]:
            entry = wild.get(s)
            if entry is not None:
                return entry
        return None


class RewriteEntry:
    """Answers for one rewritten name, per query type."""

    __slots__ = ("reason", "ttl", "by_type", "other")

    def __init__(self, reason, ttl, by_type, other):
        self.reason = reason
        self.ttl = ttl
        self.by_type = by_type  # qtype -> ((rrtype, value), ...)
        self.other = other  # answers for any other qtype (CNAME or NODATA)


class Profile:
    """How one client (or everyone else) is filtered right now."""

    def __init__(self, *, name="", block_all="", rewrites=None, paused=False,
                 client_rules=None, global_rules=None, lists=EMPTY_LISTS,
                 shadow=EMPTY_LISTS, block_mode="nxdomain", block_ttl=300,
                 client_id=None):
        self.name = name
        self.client_id = client_id
        self.rewrites = rewrites
        self.paused = paused
        self.client_rules = client_rules or {}
        self.global_rules = global_rules or {}
        self.lists = lists
        self._slots = lists.slots  # the lists' shards, for the name looked up first
        self.shadow = shadow
        self.block_mode = block_mode
        self.block_ttl = block_ttl
        self.block_all = self._block(block_all) if block_all else None
        self.pass_decision = Decision(
            PASS, reason="protection:paused" if paused else "", client_name=name
        )
        self._memo = {}  # rewrite decisions, by (entry, qtype)
        self._decided = {}  # qname -> Decision, for decisions that do not depend on qtype
        self._by_rule = {}  # rule id (negative: allow) -> Decision
        self._by_list = {}  # list id (negative: exception) -> Decision
        self._by_shadow = {}  # list id -> Decision
        # Only blocklists without exceptions can decide (besides shadow
        # lists, which come after them): no rewrites, no rules, not paused.
        # The first listed suffix decides then, so the name itself is looked
        # up first; a block on the name needs no parent sliced.
        self._exact_first = (rewrites is None and not paused and not self.client_rules
                             and not self.global_rules and not lists.has_allows)

    def _block(self, reason):
        return Decision(BLOCK, reason=reason, block_mode=self.block_mode,
                        ttl=self.block_ttl, client_name=self.name)

    def _made(self, key, make):
        d = self._memo.get(key)
        if d is None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            d = self._memo[key] = make()
        return d

    def decide(self, qname, qtype):
        decided = self._decided.get(qname)
        if decided is not None:
            return decided
        return self.decide_new(qname, qtype)

    def decide_new(self, qname, qtype):
        """
        decide() for a name not in the memo (L{Policy.decide} looked).
        All steps are inline, in one call: a name never seen before (a
        new name per query, as in a flood of random names or the
        benchmark's 200,000 blocked names) pays no further Python calls
        and no allocation beyond its suffix slices.
        """
        if self.block_all is not None:
            return self.block_all
        key = qname[:-1]
        if not key:
            return self.pass_decision
        # With blocklists alone (see __init__), a listed name is decided
        # by itself: its parents are not sliced.
        if self._exact_first:
            h = hash(key) & HASH_MASK
            hit = self._slots[h >> SHARD_SHIFT].get(h)
        else:
            hit = None
        if hit:
            decided = self._by_list.get(hit) or self._list(hit)
        else:
            sufs = [key]
            i = key[0] + 1
            n = len(key)
            while i < n:
                sufs.append(key[i:])
                i += key[i] + 1
            if self.rewrites is not None:
                entry = self.rewrites.match(sufs)
                if entry is not None:
                    return self._rewrite(entry, qtype)  # depends on qtype: not remembered
            # Steps 3-6 (the same for every qtype).
            if self.paused:
                decided = self.pass_decision
            else:
                hit = _match_rules(self.client_rules, sufs) if self.client_rules else 0
                if not hit and self.global_rules:
                    hit = _match_rules(self.global_rules, sufs)
                if hit:
                    decided = self._by_rule.get(hit) or self._rule(hit)
                else:
                    decided = None
                    if self.lists.count:
                        # Looked up first and not listed: only its parents are left.
                        hit = self.lists.match(sufs[1:] if self._exact_first else sufs)
                        if hit:
                            decided = self._by_list.get(hit) or self._list(hit)
                    if decided is None:
                        decided = self.pass_decision
                        if self.shadow.count:
                            hit = self.shadow.match(sufs)
                            if hit > 0:
                                decided = self._by_shadow.get(hit) or self._shadowed(hit)
        memo = self._decided
        if len(memo) >= DECIDED_LIMIT:
            memo.clear()
        memo[qname] = decided
        return decided

    # The decisions for a rule, list or shadow list are made once per
    # snapshot and handed out again (the fast path recognises a blocked
    # answer's decision by identity).  Ids come from the configuration,
    # so these dicts stay as small as it.

    def _rule(self, hit):
        return self._made_for(self._by_rule, "rule", hit)

    def _list(self, hit):
        return self._made_for(self._by_list, "blocklist", hit)

    def _made_for(self, table, kind, hit):
        """The decision for rule or list id ``hit`` (negative: an allow), kept in ``table``."""
        if hit > 0:
            d = self._block(f"{kind}:{hit}")
        else:
            d = Decision(ALLOW, reason=f"{kind}:{-hit}", client_name=self.name)
        table[hit] = d
        return d

    def _shadowed(self, hit):
        d = self._by_shadow[hit] = Decision(PASS, shadow=f"blocklist:{hit}",
                                            client_name=self.name)
        return d

    def _rewrite(self, entry, qtype):
        return self._made(("w", id(entry), qtype), lambda: Decision(
            REWRITE, reason=entry.reason, ttl=entry.ttl,
            answers=entry.by_type.get(qtype, entry.other), client_name=self.name))
