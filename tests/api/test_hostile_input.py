"""
Hostile input against every route of the daemon's whole API (wired as
``twistd sentinel`` wires it, served in memory): wrong JSON types for each
body field, odd literals (NaN, 1e999, 2**70), huge strings, bad JSON, bad
UTF-8, deep nesting, duplicated and unknown keys, other media types,
oversized bodies, impossible path ids, odd query strings and undecodable
header bytes.  Whatever comes in:

- the answer is never a 5xx, and an error answer is JSON in the one error
  shape ({"error": CODE, "message": text});
- a refused request changes nothing in the store;
- afterwards every list route still answers, and the stored configuration
  still compiles into a DNS policy.

Deterministic: the variants are fixed, and where a sample is taken it comes
from a seeded random.Random (SENTINEL_HOSTILE_SEED changes the seed,
SENTINEL_HOSTILE_ALL=1 sends every variant instead of a sample; SENTINEL_HOSTILE_SHOW=N
lists up to N failures, default 60; SENTINEL_HOSTILE_PG=1 runs it on PostgreSQL instead of
SQLite).
"""

import json
import os
import random

from twisted.trial.unittest import TestCase

from sentinel.api.inputs import MAX_REQUEST_BODY, compile_schema
from sentinel.filtering import compiler
from tests.api.wiring import fill_path, wired_api

SEED = int(os.environ.get("SENTINEL_HOSTILE_SEED", "20261127"))
ALL = os.environ.get("SENTINEL_HOSTILE_ALL") == "1"
PG = os.environ.get("SENTINEL_HOSTILE_PG") == "1"  # on PostgreSQL (tests/support/pg.py)
RAW = "\u0000raw\u0000"  # placeholder for a literal that json.dumps cannot write

# Values of every JSON type (and edges of each) for any one field.
VALUES = [
    None, True, False, 0, -1, 1.5, -0.0, 2**70, -(2**70), 2**53 + 1, "", " ", "x" * 100_000,
    "\u0000", "\u202e\u0301", "é" * 301, "a" * 64, [], [None], ["x"] * 1000, [[[]]], {},
    {"a": 1}, {"": None},
]
# Literals Python's json would accept but JSON does not have (or cannot hold).
LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 400, b"1E+309",
            b"1.0e-400", b'"\\ud800"', b'"\\udfff\\ud800"', b'"\\u0000"', b"-0"]
# Strings that pass a type check and exercise the semantic checks behind it.
STRINGS = [
    "..", ".", "*", "*.", "*.*", "|", "||", "|a|", "-", "a..b", "xn--", "xn--zz", "a" * 64 + ".b",
    ".".join(["a" * 63] * 5), "é.example", "\u0130.example", "ß" * 63, "\ufffd", "a\u0000b",
    "1.2.3.4/99", "::ffff:1.2.3.4/200", "fe80::1%eth0", "fe80::1%", "0.0.0.0/0", "::/0",
    "10.0.0.0/8 ", "999.1.1.1", "http://", "http://\u0000", "http://[::1", "https://a b",
    "http://a:99999/", "ftp://x.example/", "%s%n", "{0}", "../../etc/passwd", "\\", "\n",
    "Mon", "25:00", "23:59:60", "all", "lists", "192.168.1.53/\u00b2", "192.168.1.53/\uff12\uff14",
    "198.18.0.1:\u00b2", "198.18.0.1:\uff15\uff13", "[::1]:\u00b2", "tls://198.18.0.1:\u00b2",
    "https://198.18.0.1:\u00b2/dns-query", "eth0\u00b2", "\u0661\u0662",
]
PATH_IDS = ["-1", "0", "abc", "99999999999999999999", "1e3", "1.0", "+1", "%201", "%C2%B2",
            "%D9%A1", "%EF%BC%91", "%ff", "%00", "%2e%2e", "a" * 3000, "1%2F2", "0x10",
            "9007199254740993", "%F0%9F%98%80"]
QUERY_VALUES = ["", "abc", "-1", "0", "1e3", "NaN", "inf", "-inf", "99999999999999999999",
                "1_000", "%ff", "%00", "%C2%B2", "true", "yes", "2", "1.5", "a" * 5000,
                "%5B%5D", "null"]
# (A NUL byte or a line too long is refused by Twisted's HTTP parser, with a
# bare 400, before any resource sees the request.)
BAD_HEADER_BYTES = [b"\xff\xfe", b"\xc3", b"Bearer \xff", b"sentinel_session=\xff",
                    b"http://\xe9.example", b"a" * 8000]
CTYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
          "application/json-patch+json", "application/jsonx", "json", "*/*", ""]

# Valid bodies for the routes whose semantic checks sit behind the schema:
# each field is replaced in turn, so the handler sees hostile values that
# the schema lets through.
BASES = {
    "/api/rules": {"pattern": "fuzz.example", "action": "block"},
    "/api/clients": {"name": "fuzz", "addresses": ["198.18.7.7"],
                     "schedules": [{"days": ["mon"], "start": "08:00", "end": "09:00"}]},
    "/api/dns/rewrites": {"domain": "fuzz.example", "answer": "198.18.0.7"},
    "/api/blocklists": {"name": "fuzz", "url": "http://127.0.0.1:9/list.txt"},
}
# Readiness routes: 503 here, as DNS is not running in this test.
NOT_READY = ("/api/health", "/api/cluster/ready")
# Routes that would end the session or the node's role if a variant were
# accepted (each has its own tests).
SKIP = {("POST", "/api/auth/logout"), ("DELETE", "/api/auth/tokens/{token_id}"),
        ("POST", "/api/cluster/leave"), ("POST", "/api/cluster/ha/release")}


def _strict_json(data):
    """JSON as any client parses it: no NaN or Infinity (Python's json takes them)."""
    def refuse(name):
        raise ValueError(name)

    try:
        json.loads(data.decode("utf-8"), parse_constant=refuse)
    except ValueError:
        return False
    return True


def _base_for(path):
    for prefix, base in BASES.items():
        if path == prefix or path.startswith(prefix + "/{"):
            return base
    return None


def _dumps(value):
    return json.dumps(value, separators=(",", ":")).encode()


def _with_raw(value, literal):
    return _dumps(value).replace(_dumps(RAW), literal)


class HostileInputTests(TestCase):
    timeout = 300

    async def setUp(self):
        database = None
        if PG:
            from tests.support import pg

            database, drop = pg.create_database()
            self.addCleanup(drop)
        self.w, self.client, self.token, self.cookie = await wired_api(self, database)
        self.rng = random.Random(SEED)
        self.failures = []
        self.sent = 0
        # No downloads: a refused request must be the only thing that could
        # change the store while it is sent.
        self.w.leader_only.removeService(self.w.blocklist_refresher)
        # One entity of each kind (id 1), so PUT/PATCH/DELETE reach the handler.
        for path, base in BASES.items():
            r = await self.client.post(path, json=base, token=self.token)
            assert r.status == 201 and r.json()["id"] == 1, (path, r)
        self.routes = [spec for spec, _ in self.w.site.endpoints
                       if (spec.method, spec.path) not in SKIP]
        # Routes that replace or change a resource GET answers: its answer
        # is a valid body to start from.
        self.bases = {}
        readable = {s.path for s in self.routes if s.method == "GET"}
        for spec in self.routes:
            if spec.method in ("PUT", "PATCH") and spec.body and spec.path in readable \
                    and not spec.path_params:
                r = await self.client.get(spec.path, token=self.token)
                props = spec.body.get("properties") or {}
                self.bases[spec.path] = {k: v for k, v in r.json().items() if k in props}

    def sample(self, items, k):
        items = list(items)
        return items if ALL or len(items) <= k else self.rng.sample(items, k)

    async def state(self):
        snapshot = await self.w.store.snapshot()
        return snapshot.revision, [(e.kind, e.key, e.data) for e in snapshot.entities]

    async def send(self, spec, what, path=None, data=None, ctype="application/json",
                   headers=None, auth=True, query=""):
        """One request; records a failure if it breaks the rules above."""
        self.sent += 1
        hdrs = {}
        if auth:
            hdrs["authorization"] = f"Bearer {self.token}"
        if data is not None and ctype is not None:
            hdrs["content-type"] = ctype
        hdrs.update(headers or {})
        before = await self.state() if spec.mutating else None
        url = (path or fill_path(spec)) + query
        try:
            r = await self.client.request(spec.method, url, data=data, headers=hdrs)
        except Exception as e:  # the server did not answer at all
            self.failures.append(f"{spec.method} {url[:120]} [{what}]: no answer: {e!r}")
            return None
        body = None
        where = f"{spec.method} {url[:120]} [{what}]"
        try:
            body = r.json()
        except ValueError:
            pass
        else:
            if not _strict_json(r.body):
                self.failures.append(f"{where}: {r.status}, not JSON: {r.body[:200]!r}")
        if r.status >= 500 and not (r.status == 503 and spec.path in NOT_READY):
            self.failures.append(f"{where}: {r.status} {r.body[:300]!r}")
        elif r.status >= 400 and spec.path not in NOT_READY:
            # (HEAD answers have no body; "//api/..." is not under /api: the web UI's.)
            shaped = spec.method == "HEAD" or url.startswith("//")
            if not shaped and not (isinstance(body, dict) and isinstance(body.get("error"), str)
                    and isinstance(body.get("message"), str)):
                self.failures.append(f"{where}: {r.status} without the error shape: "
                                     f"{r.body[:200]!r}")
            after = await self.state() if spec.mutating else None
            if after != before and r.status != 401:
                self.failures.append(f"{where}: refused with {r.status} but the store changed")
        return r

    def assertNoFailures(self):
        shown = int(os.environ.get("SENTINEL_HOSTILE_SHOW", "60"))
        self.assertEqual(self.failures, [], f"\n{len(self.failures)} of {self.sent}:\n"
                         + "\n".join(self.failures[:shown]))

    async def assertStillServing(self):
        """Every list route answers, and the configuration compiles."""
        for spec in self.routes:
            if spec.method != "GET" or spec.path_params or spec.auth not in ("admin", "none"):
                continue
            r = await self.client.get(spec.path, token=self.token)
            ok = r.status == 200 or r.status == 503 and spec.path in NOT_READY \
                or r.status < 500 and spec.path == "/api/cluster/join-code"
            ok = ok and (spec.content_type != "application/json" or _strict_json(r.body))
            if not ok:
                self.failures.append(f"afterwards: GET {spec.path}: {r.status} {r.body[:200]!r}")
        r = await self.client.get("/api/rules/1", token=self.token)
        self.assertEqual(r.status, 200, r)
        config = compiler.FilterConfig()
        snapshot = await self.w.store.snapshot(kinds=compiler.KINDS + ("setting",))
        for entity in snapshot.entities:
            config.apply(entity)
        now = self.w.reactor.seconds()
        # No list contents here: as the engine does while blobs are missing.
        missing = {sha for key in compiler.Plan(config, now).needed() for _, sha in key}
        compiler.Plan(config, now, frozenset(missing)).build({}, snapshot.revision)

    # -- bodies -------------------------------------------------------------

    def body_variants(self, spec):
        """(whole-body variants, {field: variants}), each variant (what, bytes)."""
        schema = spec.body
        validator = compile_schema(schema)
        props = dict(schema.get("properties") or {})
        base = _base_for(spec.path) or self.bases.get(spec.path) or {}
        whole = [
            ("bad JSON", b'{"unterminated'), ("not JSON", b"hello"), ("top-level list", b"[]"),
            ("top-level string", b'"x"'), ("top-level number", b"1"), ("null", b"null"),
            ("true", b"true"), ("bad UTF-8", b"\xff\xfe{}"),
            ("bad UTF-8 in a string", b'{"a":"\xc3\x28"}'), ("BOM", b"\xef\xbb\xbf{}"),
            ("UTF-16", json.dumps(base).encode("utf-16")), ("NUL bytes", b"{\x00}"),
            ("deep list", b"[" * 10_000 + b"]" * 10_000),
            ("deep object", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
            ("deep unclosed", b"[" * 100_000),
            ("unknown field", _dumps(dict(base, zz_unknown=1))),
            ("trailing data", _dumps(base) + b" {}"),
            ("too large", b'{"x":"' + b"a" * spec.max_body + b'"}'),
            ("1e999 in an unknown field", _with_raw(dict(base, zz_unknown=RAW), b"1e999")),
            ("1e999 in a list", _with_raw(dict(base, zz_unknown=[RAW]), b"-1E+400")),
        ]
        if not validator.is_valid({}):
            whole.append(("empty body", b""))
        fields = {}
        for name, field_schema in props.items():
            out = fields[name] = []
            for value in VALUES:
                out.append((f"{name}={value!r:.20}", _dumps(dict(base, **{name: value}))))
                out.append((f"only {name}={value!r:.20}", _dumps({name: value})))
            for literal in LITERALS:
                out.append((f"{name}={literal[:20]!r}", _with_raw(dict(base, **{name: RAW}),
                                                                    literal)))
            if base:
                for text in STRINGS:
                    out.append((f"{name}={text!r:.20}", _dumps(dict(base, **{name: text}))))
                    out.append((f"{name}=[{text!r:.20}]", _dumps(dict(base, **{name: [text]}))))
            # Duplicated key: the last one wins in Python; either way, no 500.
            raw = _dumps(dict(base, **{name: RAW}))
            dup = f'"{name}":[1],"{name}":{{"x":null}}'.encode()
            out.append((f"duplicated {name}", raw.replace(f'"{name}":{_dumps(RAW).decode()}'
                                                          .encode(), dup)))
            if field_schema.get("type") == "object" or "properties" in field_schema:
                for sub in field_schema.get("properties") or {}:
                    for value in VALUES[:12]:
                        out.append((f"{name}.{sub}={value!r:.20}",
                                    _dumps(dict(base, **{name: {sub: value}}))))
            items = field_schema.get("items")
            if isinstance(items, dict) and items.get("properties"):
                good = (base.get(name) or [{}])[0]
                for sub in items["properties"]:
                    for value in VALUES[:12] + STRINGS[:10]:
                        out.append((f"{name}[0].{sub}={value!r:.20}",
                                    _dumps(dict(base, **{name: [dict(good, **{sub: value})]}))))
        return whole, fields

    async def test_bodies(self):
        count = 0
        for spec in self.routes:
            if spec.body is None or spec.auth not in ("admin", "none"):
                continue
            count += 1
            whole, fields = self.body_variants(spec)
            variants = whole[-2:] + self.sample(whole[:-2], 4)  # (the last two: a bug found)
            for name in sorted(fields):
                variants += self.sample(fields[name], 4)
            for what, data in variants:
                await self.send(spec, what, data=data)
            for ctype in self.sample(CTYPES, 1):
                await self.send(spec, f"content-type {ctype!r}", data=b"{}", ctype=ctype)
            await self.send(spec, "no content-type", data=b"{}", ctype=None)
        self.assertGreater(count, 20)
        await self.assertStillServing()
        self.assertNoFailures()

    async def test_body_over_the_hard_cap(self):
        spec = next(s for s, _ in self.w.site.endpoints if s.path == "/api/maintenance/import")
        await self.send(spec, "over MAX_REQUEST_BODY", data=b"{" + b" " * MAX_REQUEST_BODY + b"}")
        await self.assertStillServing()
        self.assertNoFailures()

    # -- paths, queries, headers ----------------------------------------------

    async def test_path_parameters(self):
        count = 0
        for spec in self.routes:
            if not spec.path_params or spec.auth not in ("admin", "none"):
                continue
            count += 1
            data = b"{}" if spec.body is not None else None
            for text in self.sample(PATH_IDS, 5):
                path = fill_path(spec, {n: text for n in spec.path_params})
                r = await self.send(spec, f"id {text[:20]}", path=path, data=data)
                if r is not None and r.status not in (400, 404, 405, 409):
                    self.failures.append(f"{spec.method} {path[:80]}: {r.status}, "
                                         f"expected 400/404")
        self.assertGreater(count, 10)
        await self.assertStillServing()
        self.assertNoFailures()

    async def test_query_strings(self):
        count = 0
        for spec in self.routes:
            if spec.method != "GET" or spec.auth not in ("admin", "none"):
                continue
            if spec.path in ("/api/cluster/sync/changes",):
                continue  # long-poll (signed: 401 here anyway)
            count += 1
            names = list(spec.query or {}) + ["limit", "zz"]
            queries = ["?", "?&&&", "?=", "?=1", "?%ff=1", "?a=%ff", "?" + "a=1&" * 2000,
                       "?limit", "?" + "%" * 10]
            for name in names:
                for value in QUERY_VALUES:
                    queries.append(f"?{name}={value}")
                queries.append(f"?{name}=1&{name}=abc")
                queries.append(f"?{name}=abc&{name}=1")
                queries.append(f"?{name}")
                queries.append(f"?{name}[]=1")
            path = fill_path(spec, {n: "1" for n in spec.path_params})
            for query in self.sample(queries, 8):
                await self.send(spec, "query", path=path, query=query)
        for spec in self.routes:  # writes with a query string
            if spec.method == "POST" and spec.query:
                for value in self.sample(QUERY_VALUES, 5):
                    await self.send(spec, "query", data=b"{}",
                                    query=f"?{next(iter(spec.query))}={value}")
        self.assertGreater(count, 15)
        await self.assertStillServing()
        self.assertNoFailures()

    async def test_headers(self):
        reads = [s for s in self.routes if s.method == "GET" and not s.path_params]
        writes = [s for s in self.routes if s.body is not None and s.auth == "admin"]
        names = ["authorization", "cookie", "origin", "sec-fetch-site", "content-type",
                 "host", "accept", "x-forwarded-for", "if-none-match", "content-encoding",
                 "transfer-encoding-x", "accept-language"]
        for spec in self.sample(reads, 3) + self.sample(writes, 3):
            data = b"{}" if spec.body is not None else None
            for name in names:
                for value in self.sample(BAD_HEADER_BYTES, 2):
                    auth = name != "authorization"
                    await self.send(spec, f"header {name}={value[:12]!r}", data=data,
                                    headers={name: value}, auth=auth)
        for spec in self.sample(writes, 3):  # a session: the cross-site check reads these
            for name in ("origin", "sec-fetch-site", "host"):
                for value in self.sample(BAD_HEADER_BYTES, 2):
                    await self.send(spec, f"session, header {name}={value[:12]!r}",
                                    data=b"{}", auth=False,
                                    headers={name: value, "cookie": self.cookie})
        await self.assertStillServing()
        self.assertNoFailures()

    # -- the backup import: hostile entities --------------------------------

    async def test_imported_entities(self):
        """A backup is a body whose entities reach every subsystem's stored
        data: hostile entities are refused whole (400, nothing applied) or,
        if accepted, leave every route answering and DNS compiling."""
        spec = next(s for s in self.routes if s.path == "/api/maintenance/import")
        for path, body in (("/api/dns/settings", {}), ("/api/filtering/settings", {}),
                           ("/api/settings/ui", {})):
            r = await self.client.get(path, token=self.token)
            await self.client.put(path, json=r.json() if path != "/api/dns/settings" else body,
                                  token=self.token)
        await self.client.post("/api/protection/pause", json={"minutes": 5}, token=self.token)
        r = await self.client.get("/api/maintenance/export", token=self.token)
        document = r.json()
        good = document["entities"]
        variants = []
        for kind, items in sorted(good.items()):
            for key, data in sorted(items.items()):
                if not isinstance(data, dict):
                    continue
                fields = sorted(data) + ["zz_unknown"]
                if kind == "blocklist":
                    fields += ["content", "status"]
                for field in fields:
                    for value in VALUES + STRINGS + [{"sha256": [1]}, {"sha256": "x" * 64},
                                                     {"domains": "x", "error": [1]}]:
                        variants.append((f"{kind}/{key}.{field}={value!r:.30}",
                                         kind, key, dict(data, **{field: value})))
                for value in VALUES[:10]:
                    variants.append((f"{kind}/{key}={value!r:.30}", kind, key, value))
            for key in ("0", "01", "-1", "1" * 19, "\u00b2", "a", " 1", "x" * 201):
                sample = next(iter(items.values()))
                variants.append((f"{kind} key {key!r:.30}", kind, key, sample))
        for kind in ("zz", "secret", "user", "api_token", "session", "x" * 40, "Rule", "setting"):
            variants.append((f"kind {kind!r:.30}", kind, "zz", {"a": 1}))
        baseline = _dumps(document)
        statuses = set()
        for what, kind, key, data in self.sample(variants, 40):
            entities = {k: dict(v) for k, v in good.items()}
            entities.setdefault(kind, {})[key] = data
            r = await self.send(spec, what, data=_dumps(dict(document, entities=entities)))
            statuses.add(r and r.status)
            if r is not None and r.status == 200:
                await self.assertStillServing()
                r = await self.send(spec, "restore the baseline", data=baseline)
                self.assertEqual(r.status, 200, r)
        self.assertTrue({200, 400} <= statuses, statuses)  # both ways were taken
        await self.assertStillServing()
        self.assertNoFailures()

    # -- methods and paths no route declares ----------------------------------

    async def test_odd_methods_and_paths(self):
        declared = {(s.method, fill_path(s)) for s, _ in self.w.site.endpoints}
        paths = sorted({fill_path(s) for s in self.routes})
        odd = ["/api", "/api/", "//api/rules", "/api//rules", "/api/rules/", "/api/rules/1/",
               "/api/./rules", "/api/rules/../rules", "/api/%2e%2e/api/rules", "/api/rules;x",
               "/api/rules/1/x/y/z", "/api/" + "a/" * 2000, "/api/rules%00", "/api/rules%2Fzz",
               "/metrics/", "/metrics/x", "/api/RULES", "/api/rules?x#y"]
        requests = [(m, p) for p in paths for m in ("HEAD", "OPTIONS", "TRACE", "PROPFIND",
                                                     "PATCH", "DELETE", "PUT")
                    if (m, p) not in declared and not (m == "HEAD" and ("GET", p) in declared)]
        requests += [(m, p) for p in odd for m in ("GET", "POST", "DELETE")]
        for method, path in self.sample(requests, 60):
            spec = _Spec(method, path)
            await self.send(spec, "odd", path=path, data=b"{}" if method != "HEAD" else None)
        await self.assertStillServing()
        self.assertNoFailures()


class _Spec:
    """What send() needs of a route, for requests no route declares."""

    def __init__(self, method, path):
        self.method, self.path = method, path
        self.mutating = method not in ("GET", "HEAD", "OPTIONS")
