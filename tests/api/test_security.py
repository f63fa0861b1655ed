"""
Security properties of the admin API that cut across areas: values that
must never come back in an answer, and the cross-site and throttling rules
for cookie-authenticated requests (see docs/API.md, Security).
"""

from twisted.trial.unittest import TestCase

from sentinel.api.base import ApiError
from sentinel.api.cluster_schemas import JOIN_BODY
from sentinel.api.inputs import validate
from tests.api.harness import ADMIN, PASSWORD, make_api

MARK = "Zq7Secret"  # in every rejected value: must appear in no answer


class WriteOnlyValueTests(TestCase):
    """A password, secret or join code that fails its schema is not quoted
    back in the 400 (the UI shows that message on screen)."""

    def assertNotQuoted(self, r, status=400):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json()["error"], "VALIDATION_ERROR")
        self.assertNotIn(MARK.encode(), r.body)
        self.assertNotIn(MARK.lower().encode(), r.body.lower())

    async def test_rejected_passwords_and_secret_values_are_not_quoted(self):
        api = await make_api(self)
        c = api.client
        r = await c.post("/api/auth/setup", json={"username": ADMIN, "password": MARK[:7]})
        self.assertNotQuoted(r)
        self.assertEqual(r.json()["details"][0],
                         {"field": "password", "message": "is too short (at least 8 characters)"})
        cookie = await api.setup_admin()
        self.assertNotQuoted(await c.post("/api/auth/login", json={
            "username": ADMIN, "password": MARK * 200}))
        self.assertNotQuoted(await c.post("/api/auth/change-password", json={
            "current_password": MARK * 200, "new_password": PASSWORD}, cookie=cookie))
        self.assertNotQuoted(await c.post("/api/auth/change-password", json={
            "current_password": PASSWORD, "new_password": MARK * 200}, cookie=cookie))
        self.assertNotQuoted(await c.put("/api/secrets/api.key", json={
            "value": MARK * 1000}, cookie=cookie))
        r = await c.put("/api/secrets/api.key", json={"value": [MARK]}, cookie=cookie)
        self.assertNotQuoted(r)
        self.assertEqual(r.json()["message"], "value: must be of type string")
        # Other fields still say what was wrong with the value sent.
        r = await c.post("/api/auth/tokens", json={"name": MARK * 10}, cookie=cookie)
        self.assertIn(MARK, r.json()["message"])

    def test_a_rejected_join_code_is_not_quoted(self):
        with self.assertRaises(ApiError) as caught:
            validate(JOIN_BODY, {"joinCode": "SJ2." + MARK * 1000})
        self.assertNotIn(MARK, str(caught.exception.body()))
