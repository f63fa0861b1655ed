"""The pure parts of sentinel.auth: password hashing, tokens, throttling."""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from sentinel.auth import passwords, tokens
from sentinel.auth.passwords import PasswordHasher, PasswordPolicyError
from sentinel.auth.throttle import LoginThrottle

CHEAP = (10, 1, 1)


class PasswordTests(SynchronousTestCase):
    def test_hash_format_and_verify(self):
        stored = passwords.hash_password("hunter2 hunter2", CHEAP)
        name, log_n, r, p, salt, key = stored.split("$")
        self.assertEqual((name, log_n, r, p), ("scrypt", "10", "1", "1"))
        self.assertTrue(passwords.verify_password("hunter2 hunter2", stored))
        self.assertFalse(passwords.verify_password("hunter2 hunter3", stored))
        self.assertFalse(passwords.verify_password("", stored))

    def test_salted(self):
        a = passwords.hash_password("same password", CHEAP)
        b = passwords.hash_password("same password", CHEAP)
        self.assertNotEqual(a, b)

    def test_default_parameters_are_memory_hard(self):
        log_n, r, p = passwords.DEFAULT_PARAMS
        self.assertGreaterEqual(128 * r * (1 << log_n), 32 * 1024 * 1024)  # >= 32 MiB

    def test_garbage_stored_values_never_verify(self):
        for stored in ("", "plain", "scrypt$1$2$3", "bcrypt$10$1$1$AA==$AA==",
                       "scrypt$99$8$1$AA==$AA==", "scrypt$x$8$1$AA==$AA==", None, 5):
            self.assertFalse(passwords.verify_password("whatever", stored), stored)

    def test_unicode(self):
        stored = passwords.hash_password("pässwörd ✓ long", CHEAP)
        self.assertTrue(passwords.verify_password("pässwörd ✓ long", stored))

    def test_needs_rehash(self):
        stored = passwords.hash_password("abcdefgh", CHEAP)
        self.assertTrue(passwords.needs_rehash(stored))
        self.assertFalse(passwords.needs_rehash(stored, CHEAP))

    def test_policy(self):
        for bad in ("short", " " * 12, "x" * 1025, None):
            self.assertRaises(PasswordPolicyError, passwords.check_policy, bad)
        self.assertEqual(passwords.check_policy("long enough"), "long enough")


class HasherTests(SynchronousTestCase):
    def test_runs_in_the_given_runner_and_unknown_users_cost_a_real_check(self):
        calls = []

        def run(fn, *args):
            calls.append(fn.__name__)
            return fn(*args)

        hasher = PasswordHasher(CHEAP, run=run)
        stored = self.successResultOf(hasher.hash("right password"))
        self.assertTrue(self.successResultOf(hasher.verify("right password", stored)))
        self.assertFalse(self.successResultOf(hasher.verify("wrong password", stored)))
        calls.clear()
        self.assertFalse(self.successResultOf(hasher.verify("right password", None)))
        self.assertEqual(calls, ["verify_password"])  # the KDF ran anyway

    def test_at_most_one_hash_at_a_time(self):
        from twisted.internet.defer import Deferred

        pending = []

        def run(fn, *args):
            d = Deferred()
            pending.append((d, fn, args))
            return d

        hasher = PasswordHasher(CHEAP, run=run, concurrency=1)
        first, second = hasher.hash("password one"), hasher.hash("password two")
        self.assertEqual(len(pending), 1)
        d, fn, args = pending.pop()
        d.callback(fn(*args))
        self.assertTrue(self.successResultOf(first).startswith("scrypt$"))
        self.assertEqual(len(pending), 1)
        d, fn, args = pending.pop()
        d.callback(fn(*args))
        self.successResultOf(second)


class TokenTests(SynchronousTestCase):
    def test_api_token_round_trip(self):
        secret = tokens.new_secret()
        text = tokens.api_token("12", secret)
        self.assertEqual(tokens.parse_api_token(text), ("12", secret))
        self.assertTrue(tokens.same_digest(secret, tokens.digest(secret)))
        self.assertFalse(tokens.same_digest(secret, tokens.digest(secret + "x")))
        self.assertFalse(tokens.same_digest(secret, None))

    def test_malformed_api_tokens(self):
        secret = tokens.new_secret()
        for bad in ("", None, f"snt_0_{secret}", f"snt_x_{secret}", f"snt_1_{secret}x",
                    f"xyz_1_{secret}", f"snt_1_{secret[:-1]}"):
            self.assertIsNone(tokens.parse_api_token(bad), bad)

    def test_secrets_are_distinct_and_long(self):
        seen = {tokens.new_secret() for _ in range(100)}
        self.assertEqual(len(seen), 100)
        self.assertTrue(all(len(s) == 43 for s in seen))


class ThrottleTests(SynchronousTestCase):
    def test_limit_window_and_reset(self):
        clock = task.Clock()
        t = LoginThrottle(clock, limit=3, window=60)
        for _ in range(3):
            self.assertEqual(t.retry_after("a"), 0)
            t.failed("a")
            clock.advance(1)
        self.assertEqual(t.retry_after("a"), 57)  # first failure at 0, now 3
        self.assertEqual(t.retry_after("b"), 0)  # per client
        clock.advance(57)
        self.assertEqual(t.retry_after("a"), 0)
        t.failed("a")
        self.assertEqual(t.retry_after("a"), 1)  # failures at 1, 2, 60
        t.succeeded("a")
        self.assertEqual(t.retry_after("a"), 0)

    def test_memory_is_bounded(self):
        clock = task.Clock()
        t = LoginThrottle(clock, limit=1, window=60, max_clients=5)
        for i in range(20):
            t.failed(str(i))
        self.assertEqual(len(t._failures), 5)
        self.assertGreater(t.retry_after("19"), 0)
        self.assertEqual(t.retry_after("0"), 0)


class HasherBusyTests(SynchronousTestCase):
    def test_a_flood_is_refused_not_queued(self):
        from twisted.internet.defer import Deferred

        from sentinel.auth.passwords import HasherBusy

        pending = []

        def run(fn, *args):
            d = Deferred()
            pending.append(d)
            return d

        hasher = PasswordHasher(CHEAP, run=run, concurrency=1, max_waiting=2)
        running = hasher.verify("x", None)
        waiting = [hasher.verify("x", None), hasher.verify("x", None)]
        refused = hasher.verify("x", None)
        self.failureResultOf(refused, HasherBusy)
        self.assertEqual(len(pending), 1)
        pending.pop().callback(False)
        self.assertFalse(self.successResultOf(running))
        self.assertNoResult(waiting[0])
