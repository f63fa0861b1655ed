"""
Configuration entities + ``now`` -> a L{Policy} snapshot.  Pure.

L{FilterConfig} mirrors the filtering entities (kept current from store
change notifications).  L{Plan} evaluates everything time-dependent once
(pause, schedules) and says which merged blocklist sets it needs; the
engine builds missing ones (the expensive part, cached by content sha, so
a rule change never touches the big dicts) and calls L{Plan.build}.
"""

import ipaddress
import json

from twisted.logger import Logger

from sentinel.filtering import model, settings
from sentinel.filtering import schedule as sched
from sentinel.filtering.names import to_key
from sentinel.filtering.policy import Policy, Profile, RewriteEntry, Rewrites, rule_table
from sentinel.filtering.rulesyntax import parse_pattern

log = Logger()
KINDS = (model.CLIENT, model.RULE, model.BLOCKLIST, model.REWRITE)
SETTING_KEYS = (settings.FILTERING, settings.PROTECTION, settings.DNS)


class FilterConfig:
    """The filtering entities by kind and integer id, plus our settings."""

    def __init__(self):
        self.entities = {kind: {} for kind in KINDS}
        self.settings = {}
        self.revision = 0

    def apply(self, entity):
        """Take in one Entity (tombstones too); True if it matters to us."""
        if entity.kind == model.SETTING:
            if entity.key not in SETTING_KEYS:
                return False
            table, key = self.settings, entity.key
        elif entity.kind in self.entities and entity.key.isdigit():
            table, key = self.entities[entity.kind], int(entity.key)
        else:
            return False
        if entity.data is None:
            table.pop(key, None)
        else:
            table[key] = entity.data
        return True

    def valid(self, kind):
        """{id: checked data}; invalid entities are left out (and logged)."""
        out = {}
        for key, data in sorted(self.entities[kind].items()):
            try:
                out[key] = model.check(kind, data if isinstance(data, dict) else {})
            except (model.Invalid, TypeError, KeyError, AttributeError) as e:
                log.warn("ignoring invalid {kind} {key}: {error}", kind=kind, key=key, error=e)
        return out


def content_sha(blocklist):
    """The sha256 of a blocklist's stored contents, or None."""
    content = blocklist.get("content")
    if isinstance(content, dict) and isinstance(content.get("sha256"), str):
        return content["sha256"]
    return None


def list_key(ids, lists, unavailable=frozenset()):
    """The cache key of a merged set: ((list id, sha), ...) for lists with contents."""
    out = []
    for i in set(ids):
        sha = content_sha(lists[i]) if i in lists else None
        if sha is not None and sha not in unavailable:
            out.append((i, sha))
    return tuple(sorted(out))


class Plan:
    """Everything decided for one instant; build() turns it into a Policy."""

    def __init__(self, config, now, unavailable=frozenset()):
        self.now = now
        self.unavailable = unavailable  # shas whose blobs cannot be read
        opts = settings.filtering(config.settings.get(settings.FILTERING))
        self.tz = settings.time_zone(opts)
        self.paused_until = settings.paused_until(config.settings.get(settings.PROTECTION), now)
        self.block_mode, self.block_ttl = settings.block_response(config.settings.get(settings.DNS))
        self.clients = config.valid(model.CLIENT)
        self.rules = config.valid(model.RULE)
        self.lists = config.valid(model.BLOCKLIST)
        self.rewrites = config.valid(model.REWRITE)
        changes = []
        if self.paused_until not in (None, float("inf")):
            changes.append(self.paused_until)
        self.active = {}  # client id -> [active schedule indexes]
        for cid, client in self.clients.items():
            active = []
            for i, s in enumerate(client["schedules"]):
                on, change = sched.evaluate(s, self.tz, now)
                if on:
                    active.append(i)
                if change is not None:
                    changes.append(change)
            self.active[cid] = active
        self.next_change = min(changes) if changes else None
        self.sets = {None: self._sets(None)}
        for cid in self.clients:
            self.sets[cid] = self._sets(cid)

    def _sets(self, cid):
        """(block key, shadow key) of the lists client ``cid`` (None: default) uses."""
        lists = self.lists
        if cid is None or self.clients[cid]["use_global_blocklists"]:
            chosen = [i for i, b in lists.items() if b["global"]]
        else:
            chosen = list(self.clients[cid]["blocklists"])
        if cid is not None:
            for i in self.active[cid]:
                s = self.clients[cid]["schedules"][i]
                if s["block"] == "lists":
                    chosen += s["blocklists"]
        chosen = [i for i in chosen if i in lists]
        block = [i for i in chosen if lists[i]["mode"] == "enabled"]
        shadow = [i for i in chosen if lists[i]["mode"] == "shadow" and i not in block]
        return (list_key(block, lists, self.unavailable),
                list_key(shadow, lists, self.unavailable))

    def lists_schedules(self):
        """Whether a schedule adds blocklists (its boundaries need other merged sets)."""
        return any(s["block"] == "lists" for c in self.clients.values() for s in c["schedules"])

    def needed(self):
        """The merged list sets the policy needs."""
        return {key for pair in self.sets.values() for key in pair if key}

    def kept_shas(self):
        """Decoded contents worth keeping: every list that is not disabled."""
        return {content_sha(b) for b in self.lists.values() if b["mode"] != "disabled"} - {None}

    def signature(self):
        """Equal signatures decide every query the same way (skip the swap)."""
        return json.dumps([
            self.clients, self.active, self.rules, self.rewrites,
            {i: (b["mode"], b["global"]) for i, b in self.lists.items()},
            sorted((str(k), v) for k, v in self.sets.items()),
            self.paused_until, self.next_change, str(self.tz), self.block_mode, self.block_ttl,
        ], sort_keys=True, default=str)

    def build(self, merged, revision=0):
        """merged: {list key: MergedLists} holding at least needed()."""
        rewrites = _rewrites(self.rewrites)
        global_rules = _rules(self.rules, None)
        paused = self.paused_until is not None

        def profile(cid):
            block_key, shadow_key = self.sets[cid]
            common = dict(
                rewrites=rewrites, paused=paused, global_rules=global_rules,
                block_mode=self.block_mode, block_ttl=self.block_ttl,
            )
            if block_key:
                common["lists"] = merged[block_key]
            if shadow_key:
                common["shadow"] = merged[shadow_key]
            if cid is None:
                return Profile(**common)
            client = self.clients[cid]
            block_all = ""
            if client["kill_switch"]:
                block_all = f"client:{cid}:paused"
            elif any(client["schedules"][i]["block"] == "all" for i in self.active[cid]):
                block_all = f"client:{cid}:schedule"
            return Profile(name=client["name"], client_id=cid, block_all=block_all,
                           client_rules=_rules(self.rules, cid), **common)

        exact, networks = {}, []
        for cid in self.clients:
            prof = profile(cid)
            for text in self.clients[cid]["addresses"]:
                if "/" in text:
                    networks.append((ipaddress.ip_network(text), cid, prof))
                elif text not in exact:
                    exact[text] = prof
        networks.sort(key=lambda n: (-n[0].prefixlen, n[0].version, n[1]))
        info = {"paused_until": self.paused_until, "next_change": self.next_change,
                "time_zone": str(self.tz), "clients": len(self.clients),
                "rules": len(self.rules), "rewrites": len(self.rewrites)}
        return Policy(profile(None), exact, [(n, p) for n, _, p in networks],
                      revision=revision, info=info)


def _rules(rules, client_id):
    chosen = []
    for rid, r in rules.items():
        if r["enabled"] and r["client_id"] == client_id:
            chosen.append((rid, r["action"], parse_pattern(r["pattern"])))
    return rule_table(chosen)


def _rewrites(rewrites):
    by_domain = {}
    for rid, r in rewrites.items():
        if r["enabled"]:
            by_domain.setdefault(r["domain"], []).append((rid, r))
    if not by_domain:
        return None
    exact, wild = {}, {}
    for domain, items in by_domain.items():
        target = wild if domain.startswith("*.") else exact
        key = to_key(domain[2:] if domain.startswith("*.") else domain)
        target[key] = _rewrite_entry(items)
    return Rewrites(exact, wild)


def _rewrite_entry(items):
    reason = f"rewrite:{items[0][0]}"
    ttl = min(r["ttl"] for _, r in items)
    cnames = [r["answer"] for _, r in items if model.rewrite_type(r["answer"]) == 5]
    if cnames:
        return RewriteEntry(reason, ttl, {}, ((5, cnames[0] + "."),))
    a = tuple((1, r["answer"]) for _, r in items if model.rewrite_type(r["answer"]) == 1)
    aaaa = tuple((28, r["answer"]) for _, r in items if model.rewrite_type(r["answer"]) == 28)
    return RewriteEntry(reason, ttl, {1: a, 28: aaaa, 255: a + aaaa}, ())
