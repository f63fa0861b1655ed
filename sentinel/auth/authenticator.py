"""
The ``admin`` authenticator the API gate uses: an API token in
``Authorization: Bearer ...``, else the session cookie.

A request that carries a bearer token is judged by the token alone (no
fallback to the cookie), which is what lets the gate skip the cross-site
check for it: a browser cannot attach that header cross-site without a CORS
preflight, which this server never grants.
"""

COOKIE = "sentinel_session"


def bearer(request):
    """The bearer credential of a request, or None (no/other scheme)."""
    value = request.getHeader("authorization")
    if not value:
        return None
    scheme, _, credential = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip()


def session_cookie(request):
    value = request.getCookie(COOKIE.encode())
    if not value:
        return None
    return value.decode("ascii", "replace")


class AdminAuthenticator:
    def __init__(self, sessions, api_tokens):
        self.sessions = sessions
        self.api_tokens = api_tokens

    async def authenticate(self, request):
        credential = bearer(request)
        if credential is not None:
            return await self.api_tokens.principal(credential)
        cookie = session_cookie(request)
        if cookie is None:
            return None
        return await self.sessions.principal(cookie)
