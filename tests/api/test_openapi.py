"""
/api/openapi.json describes exactly the routes the daemon serves, with
their authentication and request/response schemas.
"""

from twisted.trial.unittest import TestCase

from sentinel.api.openapi import operation_id
from tests.api.wiring import wired_api

# JSON endpoints of other areas that do not declare a response schema yet
# (their owners were told).  Listed exactly, so a new endpoint without a
# schema fails this test, and so does an entry that got its schema.
WITHOUT_RESPONSE_SCHEMA = set()


class OpenApiTests(TestCase):
    async def setUp(self):
        self.w, self.client, self.token, _ = await wired_api(self)
        r = await self.client.get("/api/openapi.json")
        self.assertEqual(r.status, 200)
        self.doc = r.json()
        self.endpoints = [spec for spec, _ in self.w.site.endpoints]

    async def test_every_route_is_documented_and_nothing_else(self):
        served = {(s.method.lower(), s.path) for s in self.endpoints}
        documented = {(m, p) for p, ops in self.doc["paths"].items() for m in ops}
        self.assertEqual(served - documented, set(), "served but not documented")
        self.assertEqual(documented - served, set(), "documented but not served")
        self.assertTrue(self.doc["openapi"].startswith("3.1"))
        # Spot-check that the areas of this subsystem are present.
        for path in ("/api/auth/login", "/api/auth/tokens/{token_id}", "/api/health",
                     "/api/openapi.json"):
            self.assertIn(path, self.doc["paths"])

    async def test_security_matches_authentication(self):
        schemes = self.doc["components"]["securitySchemes"]
        for spec in self.endpoints:
            op = self.doc["paths"][spec.path][spec.method.lower()]
            if spec.auth == "none":
                self.assertEqual(op["security"], [], spec.path)
            elif spec.auth == "admin":
                self.assertEqual(op["security"], [{"session": []}, {"token": []}], spec.path)
            else:
                self.assertTrue(op["security"], spec.path)
            for requirement in op["security"]:
                for name in requirement:
                    self.assertIn(name, schemes)
            if spec.auth != "none":
                self.assertIn("401", op["responses"], spec.path)
        self.assertEqual(schemes["session"]["in"], "cookie")
        self.assertEqual(schemes["token"]["scheme"], "bearer")

    async def test_request_and_response_schemas(self):
        missing = []
        for spec in self.endpoints:
            op = self.doc["paths"][spec.path][spec.method.lower()]
            self.assertEqual(op["operationId"], operation_id(spec))
            if spec.body is not None:
                self.assertEqual(
                    op["requestBody"]["content"]["application/json"]["schema"], spec.body)
            else:
                self.assertNotIn("requestBody", op)
            declared = {p["name"]: p for p in op.get("parameters", [])}
            for name in spec.path_params:
                self.assertEqual(declared[name]["in"], "path")
                self.assertEqual(declared[name]["schema"], spec.param_schema(name))
            for name, schema in (spec.query or {}).items():
                self.assertEqual(declared[name], {"name": name, "in": "query",
                                                  "required": False, "schema": schema})
            success = op["responses"][str(spec.status)]
            if spec.status == 204:
                self.assertNotIn("content", success)
            elif spec.content_type.startswith("application/json"):
                if spec.response is None:
                    missing.append(f"{spec.method} {spec.path}")
                else:
                    self.assertEqual(
                        success["content"][spec.content_type]["schema"], spec.response)
            for status, response in op["responses"].items():
                if status != str(spec.status):
                    self.assertEqual(response["content"]["application/json"]["schema"],
                                     {"$ref": "#/components/schemas/Error"})
        served = {f"{s.method} {s.path}" for s in self.endpoints}
        self.assertEqual(set(missing) - WITHOUT_RESPONSE_SCHEMA, set(),
                         "JSON endpoints without a response schema")
        self.assertEqual(WITHOUT_RESPONSE_SCHEMA & served - set(missing), set(),
                         "these have a response schema now: remove them from the list")

    async def test_operation_ids_unique(self):
        ids = [op["operationId"] for ops in self.doc["paths"].values() for op in ops.values()]
        self.assertEqual(len(ids), len(set(ids)))
