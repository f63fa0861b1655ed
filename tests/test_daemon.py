"""
The real daemon, started the way users start it (`twistd -n sentinel`):
it comes up on unprivileged ports, and user mistakes and operational
failures end it with one actionable line.
"""

import os
import socket
import stat
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon, run_sentinel
from tests.support.ports import free_port


def one_line_error(result):
    err = result.stderr.decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return err, lines


class StartTests(SynchronousTestCase):
    def test_starts_on_high_ports_and_answers_health(self):
        d = Daemon(self).start()
        health = d.get("/api/health")
        self.assertEqual(health.status, 200)
        self.assertEqual(health.json()["ok"], True)
        self.assertEqual(health.headers["Content-Type"], "application/json; charset=utf-8")
        version = d.get("/api/version").json()
        self.assertIn("version", version)
        key = os.path.join(d.data_dir, "node.key")
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        self.assertTrue(os.path.exists(os.path.join(d.data_dir, "sentinel.db")))

    def test_restart_keeps_data_and_key(self):
        d = Daemon(self).start()
        with open(os.path.join(d.data_dir, "node.key"), "rb") as f:
            key = f.read()
        d.stop()
        d.start()
        with open(os.path.join(d.data_dir, "node.key"), "rb") as f:
            self.assertEqual(f.read(), key)
        self.assertEqual(d.get("/api/health").status, 200)
        self.assertNotIn("Traceback", d.log())

    def test_unknown_api_path_is_json_404(self):
        d = Daemon(self).start()
        r = d.get("/api/no-such-thing")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json()["error"], "NOT_FOUND")
        r = d.request("DELETE", "/api/health")
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.headers["Allow"])


class StartupErrorTests(SynchronousTestCase):
    def test_bad_option_value_is_one_line(self):
        result = run_sentinel(["--data-dir", tempfile.mkdtemp(), "--dns-port", "seventy"])
        err, lines = one_line_error(result)
        self.assertEqual(result.returncode, 2, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("--dns-port", lines[0])
        self.assertNotIn("Traceback", err)

    def test_bad_boolean_variable_is_named(self):
        result = run_sentinel(["--data-dir", tempfile.mkdtemp()], env={"SENTINEL_DEBUG": "perhaps"})
        err, lines = one_line_error(result)
        self.assertEqual(result.returncode, 2, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("SENTINEL_DEBUG", lines[0])

    def test_unwritable_data_dir(self):
        parent = tempfile.mkdtemp()
        blocker = os.path.join(parent, "a-file")
        with open(blocker, "w") as f:
            f.write("x")
        result = run_sentinel(["--data-dir", os.path.join(blocker, "data"),
                               "--dns-port", str(free_port()), "--http-port", str(free_port())])
        err, lines = one_line_error(result)
        self.assertEqual(result.returncode, 1, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("not writable", lines[0])
        self.assertIn("--data-dir", lines[0])

    def test_busy_http_port(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            result = run_sentinel([
                "--data-dir", tempfile.mkdtemp(), "--dns-port", str(free_port()),
                "--dns-interface", "127.0.0.1", "--http-port", str(port),
                "--http-interface", "127.0.0.1", "--upstream", "127.0.0.1:9"])
        err, lines = one_line_error(result)
        self.assertNotEqual(result.returncode, 0, err)
        self.assertIn(f"HTTP port {port}/tcp is already in use", err)
        self.assertNotIn("Traceback", err)

    def test_busy_dns_port(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            result = run_sentinel([
                "--data-dir", tempfile.mkdtemp(), "--dns-port", str(port),
                "--dns-interface", "127.0.0.1", "--http-port", str(free_port()),
                "--http-interface", "127.0.0.1", "--upstream", "127.0.0.1:9"])
        err, lines = one_line_error(result)
        self.assertNotEqual(result.returncode, 0, err)
        self.assertIn(f"DNS port {port}/", err)
        self.assertIn("already in use", err)
        self.assertEqual(len(lines), 1, err)
        self.assertNotIn("Traceback", err)

    def test_port_53_hint_names_systemd_resolved(self):
        from sentinel.startup import explain_listen_error
        from twisted.internet.error import CannotListenError
        import errno

        busy = CannotListenError("", 53, OSError(errno.EADDRINUSE, "Address already in use"))
        message = explain_listen_error("DNS", 53, "udp", busy)
        self.assertIn("DNSStubListener=no", message)
        denied = CannotListenError("", 53, OSError(errno.EACCES, "Permission denied"))
        self.assertIn("CAP_NET_BIND_SERVICE", explain_listen_error("DNS", 53, "udp", denied))
