"""
Password hashing with scrypt (memory-hard, from ``cryptography``).

A stored hash is ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>``, so the
parameters travel with it and can be raised later (L{needs_rehash}).
Checks compare in constant time, and checking a password for an unknown
user costs as much as for a known one (L{PasswordHasher.verify} with
``None``), so response times do not reveal which usernames exist.

Hashing takes ~0.1 s of CPU and 32 MiB: it runs in a thread (``run``,
injected; tests pass a synchronous one) and at most ``concurrency`` at a
time, so logins can never take both cores away from DNS; when more than
``max_waiting`` checks queue up, further ones fail at once with
L{HasherBusy} (HTTP 503) instead of piling up.
"""

import base64
import hmac
import os

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from twisted.internet.defer import DeferredSemaphore, fail, maybeDeferred

# OWASP's scrypt equivalent of N=2^17/r=8/p=1 with 32 MiB instead of 128 MiB.
DEFAULT_PARAMS = (15, 8, 3)  # log2 n, r, p
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 8
MAX_LENGTH = 1024


class PasswordPolicyError(ValueError):
    pass


class HasherBusy(Exception):
    """Too many password checks are already waiting (answer 503, retry)."""


def check_policy(password):
    """Raise PasswordPolicyError unless the password is acceptable."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"passwords are at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"passwords are at most {MAX_LENGTH} characters")
    if not password.strip():
        raise PasswordPolicyError("a password cannot be only spaces")
    return password


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def _derive(password, salt, log_n, r, p):
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=1 << log_n, r=r, p=p)
    return kdf.derive(password.encode("utf-8"))


def hash_password(password, params=DEFAULT_PARAMS, salt=None):
    """The stored form of a password (synchronous; see PasswordHasher)."""
    log_n, r, p = params
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = _derive(password, salt, log_n, r, p)
    return f"scrypt${log_n}${r}${p}${_b64(salt)}${_b64(key)}"


def parse(stored):
    """(log_n, r, p, salt, key) or None if ``stored`` is not ours."""
    try:
        name, log_n, r, p, salt, key = stored.split("$")
        if name != "scrypt":
            return None
        log_n, r, p = int(log_n), int(r), int(p)
        if not (1 <= log_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
            return None
        return (log_n, r, p, base64.b64decode(salt, validate=True),
                base64.b64decode(key, validate=True))
    except (AttributeError, ValueError):
        return None


def verify_password(password, stored):
    """True if ``password`` matches ``stored`` (constant-time compare)."""
    parsed = parse(stored)
    if parsed is None or not isinstance(password, str):
        return False
    log_n, r, p, salt, key = parsed
    return hmac.compare_digest(_derive(password, salt, log_n, r, p), key)


def needs_rehash(stored, params=DEFAULT_PARAMS):
    parsed = parse(stored)
    return parsed is None or parsed[:3] != tuple(params)


def _synchronous(fn, *args):
    return fn(*args)


class PasswordHasher:
    """
    Asynchronous hashing.  ``run(fn, *args)`` -> Deferred runs ``fn`` off the
    reactor thread (e.g. ``threads.deferToThread``); the default runs it
    inline (tests).
    """

    def __init__(self, params=DEFAULT_PARAMS, run=None, concurrency=1, max_waiting=32):
        self.params = tuple(params)
        self._run = run or _synchronous
        self._sem = DeferredSemaphore(concurrency)
        self._max_waiting = max_waiting
        # Verifying against this costs what a real check costs.
        self._dummy = hash_password("not a real password", self.params)

    def _limited(self, fn, *args):
        # A flood of logins (from many addresses, so not throttled) must
        # not queue without bound: beyond max_waiting, refuse at once.
        if len(self._sem.waiting) >= self._max_waiting:
            return fail(HasherBusy())
        return self._sem.run(lambda: maybeDeferred(self._run, fn, *args))

    def hash(self, password):
        """Deferred -> stored hash."""
        return self._limited(hash_password, password, self.params)

    def verify(self, password, stored):
        """Deferred -> bool.  ``stored`` None (unknown user) is always False
        but takes as long as a real check."""
        if stored is None or parse(stored) is None:
            d = self._limited(verify_password, password, self._dummy)
            return d.addCallback(lambda _: False)
        return self._limited(verify_password, password, stored)

    def needs_rehash(self, stored):
        return needs_rehash(stored, self.params)
