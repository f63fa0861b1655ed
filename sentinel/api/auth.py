"""
Authentication endpoints: /api/auth/status, setup, login, logout,
change-password, me, and API tokens (/api/auth/tokens).
"""

from twisted.logger import Logger

from sentinel.api.base import ApiError, Reply, endpoint, not_found, validation_error
from sentinel.api.schemas import (
    NAME, PASSWORD, TIMESTAMP, USERNAME, ID, ID_PARAM, array_of, nullable, obj,
)
from sentinel.auth import (
    COOKIE, AlreadyConfigured, DuplicateName, PasswordPolicyError, WrongPassword,
)
from sentinel.auth.authenticator import session_cookie
from sentinel.auth.passwords import HasherBusy, check_policy
from sentinel.auth.throttle import client_key

log = Logger()

CREDENTIALS = obj({"username": USERNAME, "password": PASSWORD},
                  required=["username", "password"])
LOGIN = obj({"username": {"type": "string", "minLength": 1, "maxLength": 64},
             "password": {"type": "string", "minLength": 1, "maxLength": 1024,
                          "writeOnly": True}},
            required=["username", "password"])
SESSION = obj({"username": {"type": "string"}, "expires_at": TIMESTAMP},
              required=["username", "expires_at"])
STATUS = obj({"configured": {"type": "boolean"}, "authenticated": {"type": "boolean"},
              "username": nullable({"type": "string"})},
             required=["configured", "authenticated", "username"])
ME = obj({"username": {"type": "string"},
          "method": {"type": "string", "enum": ["session", "token", "cluster"]},
          "expires_at": nullable(TIMESTAMP), "token_id": nullable(ID)},
         required=["username", "method"])
CHANGE_PASSWORD = obj({"current_password": {"type": "string", "maxLength": 1024,
                                            "writeOnly": True},
                       "new_password": PASSWORD},
                      required=["current_password", "new_password"])
TOKEN = obj({"id": ID, "name": {"type": "string"}, "created_at": TIMESTAMP,
             "created_by": {"type": "string"}},
            required=["id", "name", "created_at", "created_by"])
NEW_TOKEN = dict(TOKEN, properties=dict(TOKEN["properties"], token={
    "type": "string", "description": "shown only now; send as Authorization: Bearer"}),
    required=TOKEN["required"] + ["token"])
TOKEN_LIST = obj({"tokens": array_of(TOKEN)}, required=["tokens"])


def _busy():
    return ApiError(503, "BUSY", "Too many logins at once; try again in a moment.",
                    headers={"retry-after": "2"})


def client_of(request):
    """Who to throttle: the peer address (forwarding headers not trusted),
    an IPv6 one by its /64 (L{client_key})."""
    address = request.getClientAddress()
    return client_key(getattr(address, "host", None) or str(address))


class AuthApi:
    def __init__(self, users, sessions, api_tokens, throttle, authenticator,
                 trust_forwarded_proto=False, setup_from=None):
        """throttle: a L{sentinel.auth.LoginLimits}.  setup_from: callable(ip
        text) -> whether a device at that address may create the admin
        account (the daemon: whoever may use this node's DNS); None: any."""
        self._setup_from = setup_from
        self._users = users
        self._sessions = sessions
        self._tokens = api_tokens
        self._throttle = throttle
        self._authenticator = authenticator
        self._trust_forwarded_proto = trust_forwarded_proto

    # -- cookies ----------------------------------------------------------

    def _secure(self, request):
        if request.isSecure():
            return True
        if self._trust_forwarded_proto:
            return (request.getHeader("x-forwarded-proto") or "").lower() == "https"
        return False

    def _set_cookie(self, request, token):
        request.addCookie(COOKIE, token, path="/", httpOnly=True, sameSite="strict",
                          secure=True if self._secure(request) else None)

    def _clear_cookie(self, request):
        request.addCookie(COOKIE, "", path="/", httpOnly=True, sameSite="strict",
                          max_age="0", expires="Thu, 01 Jan 1970 00:00:00 GMT",
                          secure=True if self._secure(request) else None)

    def _throttled(self, client, account):
        wait, which = self._throttle.retry_after(client, account)
        if which == "account":
            raise ApiError(429, "TOO_MANY_ATTEMPTS",
                           f"Too many failed attempts on this account (from any address); "
                           f"try again in {wait} s.", headers={"retry-after": str(wait)})
        if wait:
            raise ApiError(429, "TOO_MANY_ATTEMPTS",
                           f"Too many failed attempts; try again in {wait} s.",
                           headers={"retry-after": str(wait)})

    def _failed(self, client, account):
        """After a wrong password: say in the log when a limit is reached
        (once: further attempts are refused before they count)."""
        _, which = self._throttle.retry_after(client, account)
        if which == "client":
            log.warn("auth: too many failed password attempts from {client}; refusing it "
                     "for a while", client=client)
        elif which == "account":
            log.warn("auth: too many failed password attempts on account {account} "
                     "(last from {client}); refusing logins to it for a while",
                     account=account, client=client)

    # -- endpoints --------------------------------------------------------

    @endpoint("GET", "/api/auth/status", auth="none", tag="auth", response=STATUS,
              summary="Whether an admin account exists and whether the caller is logged in")
    async def status(self, call):
        principal = await self._authenticator.authenticate(call.request)
        return {"configured": await self._users.configured(),
                "authenticated": principal is not None,
                "username": principal.username if principal else None}

    @endpoint("POST", "/api/auth/setup", auth="none", tag="auth", body=CREDENTIALS,
              response=SESSION, status=201, errors=(403, 409),
              summary="Create the admin account (only while none exists, only from the "
                      "LAN) and log in")
    async def setup(self, call):
        address = call.request.getClientAddress()
        ip = getattr(address, "host", None)
        if self._setup_from is not None and ip is not None and not self._setup_from(ip):
            log.warn("auth: refused to create the admin account for {ip}: not a LAN address",
                     ip=ip)
            raise ApiError(403, "SETUP_FROM_LAN_ONLY",
                           "The admin account can only be created from the local network "
                           "(loopback, private, link-local or this node's own networks, or "
                           "the networks allowed to use its DNS); open the UI from a device "
                           "on the LAN.")
        try:
            check_policy(call.body["password"])
            username = await self._users.setup(call.body["username"], call.body["password"])
        except HasherBusy:
            raise _busy() from None
        except PasswordPolicyError as e:
            raise validation_error(str(e), "password") from None
        except AlreadyConfigured:
            raise ApiError(409, "ALREADY_CONFIGURED",
                           "An admin account exists already; log in instead.") from None
        token, expires = await self._sessions.open(username)
        self._set_cookie(call.request, token)
        return Reply(201, {"username": username, "expires_at": expires})

    @endpoint("POST", "/api/auth/login", auth="none", tag="auth", body=LOGIN,
              response=SESSION, readonly_exempt=True, errors=(401, 429, 503),
              summary="Log in: sets the session cookie (HttpOnly, SameSite=Strict)")
    async def login(self, call):
        request = call.request
        client, account = client_of(request), call.body["username"]
        self._throttled(client, account)
        # counted now: parallel attempts cannot overrun
        self._throttle.attempt(client, account)
        try:
            user = await self._users.check(account, call.body["password"])
        except HasherBusy:
            self._throttle.cancel(client, account)
            raise _busy() from None
        except BaseException:  # e.g. the store is unreachable: not judged
            self._throttle.cancel(client, account)
            raise
        if user is None:
            self._failed(client, account)
            raise ApiError(401, "INVALID_CREDENTIALS", "Wrong username or password.")
        self._throttle.succeeded(client, account)
        previous = session_cookie(request)
        token, expires = await self._sessions.open(user["username"])
        if previous is not None:
            # Rotation: the session this browser had before is ended, not
            # just replaced in its cookie jar.
            await self._sessions.close(previous)
        self._set_cookie(request, token)
        return {"username": user["username"], "expires_at": expires}

    @endpoint("POST", "/api/auth/logout", auth="none", tag="auth", status=204,
              readonly_exempt=True,
              summary="Log out: ends the session on the server and clears the cookie")
    async def logout(self, call):
        cookie = session_cookie(call.request)
        if cookie is not None:
            await self._sessions.close(cookie)
        self._clear_cookie(call.request)
        return Reply(204)

    @endpoint("POST", "/api/auth/change-password", tag="auth", body=CHANGE_PASSWORD,
              status=204, errors=(403, 429),
              summary="Change the password; ends every other session of the user")
    async def change_password(self, call):
        request = call.request
        client, account = client_of(request), call.principal.username
        self._throttled(client, account)
        try:
            check_policy(call.body["new_password"])
        except PasswordPolicyError as e:
            raise validation_error(str(e), "new_password") from None
        # counted now: parallel attempts cannot overrun
        self._throttle.attempt(client, account)
        try:
            await self._users.change_password(
                account, call.body["current_password"],
                call.body["new_password"], keep_session=call.principal.session_id)
        except WrongPassword:
            self._failed(client, account)
            raise ApiError(403, "WRONG_PASSWORD", "The current password is wrong.") from None
        except HasherBusy:
            self._throttle.cancel(client, account)
            raise _busy() from None
        except BaseException:
            self._throttle.cancel(client, account)
            raise
        self._throttle.cancel(client, account)
        return Reply(204)

    @endpoint("GET", "/api/auth/me", tag="auth", response=ME,
              summary="Who is logged in, and how")
    async def me(self, call):
        p = call.principal
        return {"username": p.username, "method": p.method,
                "expires_at": p.expires_at, "token_id": p.token_id}

    @endpoint("GET", "/api/auth/tokens", tag="auth", response=TOKEN_LIST,
              summary="List API tokens (never the tokens themselves)")
    async def list_tokens(self, call):
        return {"tokens": await self._tokens.list()}

    @endpoint("POST", "/api/auth/tokens", tag="auth", status=201, errors=(409,),
              body=obj({"name": NAME}, required=["name"]), response=NEW_TOKEN,
              summary="Create an API token; the answer is the only time it is shown")
    async def create_token(self, call):
        name = call.body["name"].strip()
        if not name:
            raise validation_error("the name cannot be blank", "name")
        try:
            public, token = await self._tokens.create(name, call.principal.username)
        except DuplicateName:
            raise ApiError(409, "DUPLICATE", f"A token named {name!r} exists already.") \
                from None
        return Reply(201, dict(public, token=token))

    @endpoint("DELETE", "/api/auth/tokens/{token_id}", tag="auth", status=204,
              params={"token_id": ID_PARAM}, errors=(404,),
              summary="Revoke an API token (it stops working at once)")
    async def revoke_token(self, call, token_id):
        if not await self._tokens.revoke(token_id):
            raise not_found("API token")
        return Reply(204)
