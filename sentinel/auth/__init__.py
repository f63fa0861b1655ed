"""
Admin authentication: accounts with scrypt password hashes, server-side
sessions and API tokens stored hashed (all synced configuration entities),
login throttling, and the ``admin`` authenticator for the API gate.
"""

from sentinel.auth.accounts import AlreadyConfigured, Users, WrongPassword
from sentinel.auth.apitokens import ApiTokens, DuplicateName
from sentinel.auth.authenticator import COOKIE, AdminAuthenticator
from sentinel.auth.passwords import PasswordHasher, PasswordPolicyError
from sentinel.auth.sessions import Sessions
from sentinel.auth.throttle import LoginLimits, LoginThrottle

__all__ = [
    "AdminAuthenticator", "AlreadyConfigured", "ApiTokens", "COOKIE", "DuplicateName",
    "LoginLimits", "LoginThrottle", "PasswordHasher", "PasswordPolicyError", "Sessions", "Users",
    "WrongPassword",
]
