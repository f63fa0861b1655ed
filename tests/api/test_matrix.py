"""
Behaviour every endpoint must have, generated from the Site's endpoint list
(the daemon's full wiring), so routes added later are covered without
writing a test for them: 401 without credentials, 403 for cross-site
mutations, and for every JSON body: 400 on bad JSON and wrong types, 413
when too large, 415 for another media type -- all in the one error shape.
"""

from twisted.trial.unittest import TestCase

from sentinel.api.inputs import compile_schema
from tests.api.harness import EVIL_ORIGIN
from tests.api.wiring import fill_path, wired_api

JSON = {"content-type": "application/json"}
# Candidate values, most type-different first; the first one a property's
# schema rejects is its "wrong type".
CANDIDATES = (12345, "not-the-right-type", True, [1, 2], {"a": 1}, None, -1.5)


def wrong_value(schema):
    validator = compile_schema(schema)
    for value in CANDIDATES:
        if not validator.is_valid(value):
            return value
    return None


class MatrixTests(TestCase):
    async def setUp(self):
        self.w, self.client, self.token, self.cookie = await wired_api(self)
        self.endpoints = [spec for spec, _ in self.w.site.endpoints]
        self.failures = []

    def expect(self, spec, what, response, status, code=None):
        body = None
        try:
            body = response.json()
        except ValueError:
            pass
        ok = response.status == status and isinstance(body, dict) \
            and isinstance(body.get("message"), str) \
            and (code is None or body.get("error") == code)
        if not ok:
            self.failures.append(
                f"{spec.method} {spec.path} [{what}]: expected {status} {code or ''}, "
                f"got {response.status} {response.body[:200]!r}")
        return body

    def assertNoFailures(self):
        self.assertEqual(self.failures, [], "\n" + "\n".join(self.failures))

    def _credentials(self, spec):
        """Headers that get past authentication, or None if we have none."""
        if spec.auth == "none":
            return {}
        if spec.auth == "admin":
            return {"authorization": f"Bearer {self.token}"}
        return None

    async def test_unauthenticated_is_401(self):
        count = 0
        for spec in self.endpoints:
            if spec.auth == "none":
                continue
            count += 1
            kw = {"data": b"{}", "headers": dict(JSON)} if spec.body is not None else {}
            r = await self.client.request(spec.method, fill_path(spec), **kw)
            self.expect(spec, "no credentials", r, 401)
            r = await self.client.request(spec.method, fill_path(spec), headers={
                "authorization": "Bearer snt_1_" + "A" * 43}, cookie="sentinel_session=x")
            self.expect(spec, "bad credentials", r, 401)
        self.assertGreaterEqual(count, 5)
        self.assertNoFailures()

    async def test_cross_site_mutations_are_403(self):
        count = 0
        for spec in self.endpoints:
            if not spec.mutating:
                continue
            count += 1
            kw = {"data": b"{}", "headers": dict(JSON)} if spec.body is not None else {}
            for extra in ({"origin": EVIL_ORIGIN}, {"sec-fetch-site": "cross-site"}):
                headers = dict(kw.get("headers", {}), **extra)
                r = await self.client.request(spec.method, fill_path(spec), cookie=self.cookie,
                                              **dict(kw, headers=headers))
                self.expect(spec, f"cross-site {extra}", r, 403, "CROSS_SITE_REQUEST")
        self.assertGreater(count, 3)
        self.assertNoFailures()

    async def test_bodies_bad_json_wrong_types_too_large_wrong_media_type(self):
        count = 0
        for spec in self.endpoints:
            creds = self._credentials(spec)
            if spec.body is None or creds is None:
                continue
            count += 1
            path = fill_path(spec)

            async def send(data, ctype="application/json"):
                return await self.client.request(
                    spec.method, path, data=data, headers=dict(creds, **{"content-type": ctype}))

            self.expect(spec, "bad JSON", await send(b'{"unterminated'), 400, "BAD_JSON")
            self.expect(spec, "too large", await send(
                b'{"x": "' + b"a" * spec.max_body + b'"}'), 413, "BODY_TOO_LARGE")
            self.expect(spec, "media type", await send(b"{}", "text/plain"), 415,
                        "UNSUPPORTED_MEDIA_TYPE")
            top = spec.body.get("type")
            if top is not None:
                wrong = b"[1]" if top != "array" else b"{}"
                self.expect(spec, "wrong top-level type", await send(wrong), 400,
                            "VALIDATION_ERROR")
            for name, schema in (spec.body.get("properties") or {}).items():
                value = wrong_value(schema)
                if value is None:
                    continue
                import json

                body = self.expect(spec, f"wrong type for {name}", await send(
                    json.dumps({name: value}).encode()), 400, "VALIDATION_ERROR")
                fields = [d.get("field", "") for d in (body or {}).get("details") or []]
                if body and not any(f == name or f.startswith(name + ".") for f in fields):
                    self.failures.append(
                        f"{spec.method} {spec.path} [wrong type for {name}]: "
                        f"no detail names the field: {fields}")
        self.assertGreater(count, 3)
        self.assertNoFailures()

    async def test_unknown_ids_are_404(self):
        """Every route with ids in its path answers 404 for one that does not
        exist (routes with a body are covered by their own tests: the body
        is checked before the id)."""
        count = 0
        unknown = 987654321
        for spec in self.endpoints:
            creds = self._credentials(spec)
            if creds is None or spec.body is not None or not spec.path_params:
                continue
            schemas = [spec.param_schema(n) for n in spec.path_params]
            # Typed params get the id as a number, untyped ones as text.
            if not all(compile_schema(s).is_valid(unknown if s.get("type") == "integer"
                                                  else str(unknown)) for s in schemas):
                continue
            count += 1
            path = fill_path(spec, {n: unknown for n in spec.path_params})
            r = await self.client.request(spec.method, path, headers=creds)
            self.expect(spec, "unknown id", r, 404, "NOT_FOUND")
        self.assertGreaterEqual(count, 8)
        self.assertNoFailures()
