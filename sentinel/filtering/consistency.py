"""
The cross-entity rules of the filtering configuration, checked over a
whole configuration at once (a restored backup): what the API areas refuse
one write at a time (sentinel/api/clients.py, rules.py, blocklists.py,
rewrites.py check_refs) -- references to clients and blocklists that do not
exist, duplicate rules, client names, client addresses, blocklist URLs and
rewrites, a CNAME rewrite beside other answers.  Pure; linear in the size of
the configuration.
"""

from sentinel.filtering import model

KINDS = (model.CLIENT, model.RULE, model.BLOCKLIST, model.REWRITE)


def _ids(items):
    """{int id: data} of the checked entities (keys are ids, data normalized)."""
    ids = sorted(int(key) for key in items if key.isascii() and key.isdigit())
    return {i: items[str(i)] for i in ids}


def problems(state):
    """[(kind, key, field, message)] for state {kind: {key: data}} (every kind
    of KINDS; data as L{model.check} returns it)."""
    clients, rules = _ids(state[model.CLIENT]), _ids(state[model.RULE])
    lists, rewrites = _ids(state[model.BLOCKLIST]), _ids(state[model.REWRITE])
    found = []
    names, owners, urls, seen_rules = {}, {}, {}, {}
    for cid, c in clients.items():
        other = names.setdefault(c["name"].casefold(), cid)
        if other != cid:
            found.append((model.CLIENT, cid, "name", f"client {other} has this name"))
        for address in c["addresses"]:
            other = owners.setdefault(address, cid)
            if other != cid:
                found.append((model.CLIENT, cid, "addresses",
                              f"{address} belongs to client {other} too"))
        wanted = [("blocklists", i) for i in c["blocklists"]]
        for n, s in enumerate(c["schedules"]):
            wanted += [(f"schedules.{n}.blocklists", i) for i in s["blocklists"]]
        found += [(model.CLIENT, cid, field, f"no blocklist {list_id}")
                  for field, list_id in wanted if list_id not in lists]
    for rid, r in rules.items():
        if r["client_id"] is not None and r["client_id"] not in clients:
            found.append((model.RULE, rid, "client_id", f"no client {r['client_id']}"))
        other = seen_rules.setdefault((r["pattern"], r["action"], r["client_id"]), rid)
        if other != rid:
            found.append((model.RULE, rid, "pattern", f"the same rule as rule {other}"))
    for lid, b in lists.items():
        other = urls.setdefault(b["url"], lid)
        if other != lid:
            found.append((model.BLOCKLIST, lid, "url", f"blocklist {other} has this URL"))
    answers = {}
    for wid, w in rewrites.items():
        answers.setdefault(w["domain"], []).append((wid, w["answer"]))
    for domain, pairs in answers.items():
        first = {}
        for wid, answer in pairs:
            other = first.setdefault(answer, wid)
            if other != wid:
                found.append((model.REWRITE, wid, "answer", f"the same as rewrite {other}"))
            elif len(pairs) > 1 and model.rewrite_type(answer) == 5:
                found.append((model.REWRITE, wid, "answer",
                              f"{domain} has other answers; a name with a CNAME can have "
                              f"no other answers"))
    return [(kind, str(key), field, message) for kind, key, field, message in found]


class FilteringConsistency:
    """Registered with the backup import: checks the configuration a restore
    would leave (the document's kinds, the store's for the others)."""

    kinds = KINDS

    def __call__(self, state):
        return problems(state)
