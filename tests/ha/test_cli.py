"""sentinel-keepalived's command line: options, environment, render."""

import io
import os
import sys
import tempfile

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sentinel.ha import cli
from tests.ha.fakes import write_config


class ParseTests(SynchronousTestCase):
    def test_defaults_follow_the_data_dir(self):
        command, opts = cli.parse([], {})
        self.assertEqual(command, "run")
        self.assertEqual(opts["data-dir"], "/var/lib/sentinel")
        self.assertEqual(opts["role-file"], "/var/lib/sentinel/sentinel/cluster_role")
        self.assertEqual(opts["runtime-dir"], "/run/sentinel-keepalived")

    def test_environment_and_options(self):
        env = {"SENTINEL_DATA_DIR": "/data", "CLUSTER_ROLE_FILE": "/data/role",
               "SENTINEL_HA_RUNTIME_DIR": "/run/x", "SENTINEL_NETINFO_INTERVAL": "10"}
        _, opts = cli.parse(["run", "--runtime-dir=/run/y"], env)
        self.assertEqual((opts["data-dir"], opts["role-file"], opts["runtime-dir"],
                          opts["netinfo-interval"]), ("/data", "/data/role", "/run/y", 10.0))

    def test_mistakes(self):
        for argv in (["bogus"], ["--nope", "1"], ["--data-dir"], ["--netinfo-interval", "0"],
                     ["--data-dir", " "]):
            self.assertRaises(cli.UsageError, cli.parse, argv, {})
        self.assertEqual(cli.main(["--nope"], {}), 2)

    def test_help(self):
        self.assertRaises(cli.HelpRequested, cli.parse, ["--help"], {})


class RenderCommandTests(SynchronousTestCase):
    def test_render_hides_the_password(self):
        data = tempfile.mkdtemp()
        write_config(data, password="a|b&c")
        _, opts = cli.parse(["render", "--data-dir", data], {})
        out = io.StringIO()
        self.assertEqual(cli.render_command(opts, out), 0)
        text = out.getvalue()
        self.assertIn("auth_pass <hidden>", text)
        self.assertNotIn("a|b&c", text)
        self.assertIn("virtual_router_id 53", text)

    def test_render_reports_a_broken_file(self):
        data = tempfile.mkdtemp()
        path = write_config(data)
        with open(path, "w") as f:
            f.write("{")
        _, opts = cli.parse(["render", "--data-dir", data], {})
        out = io.StringIO()
        self.assertEqual(cli.render_command(opts, out), 1)
        self.assertIn("not valid JSON", out.getvalue())
        self.assertTrue(os.path.exists(path))

    def test_render_reports_an_unusable_file_or_path_in_one_line(self):
        """A directory or FIFO in place of config.json (no hang), a data
        directory keepalived.conf cannot name: an error line, exit 1."""
        data = tempfile.mkdtemp()
        path = write_config(data)
        os.remove(path)
        for make in (os.mkdir, os.mkfifo):
            make(path)
            out = io.StringIO()
            _, opts = cli.parse(["render", "--data-dir", data], {})
            self.assertEqual(cli.render_command(opts, out), 1)
            self.assertIn("config.json: not a regular file", out.getvalue())
            (os.rmdir if make is os.mkdir else os.remove)(path)
        spaced = os.path.join(tempfile.mkdtemp(), "my data")
        os.mkdir(spaced)
        write_config(spaced)
        _, opts = cli.parse(["render", "--data-dir", spaced], {})
        out = io.StringIO()
        self.assertEqual(cli.render_command(opts, out), 1)
        self.assertIn("error: cannot render keepalived.conf: refusing to render arg value",
                      out.getvalue())


class RunOutputTests(TestCase):
    """The sidecar's command runner (`ip -j ...`), with real processes."""

    async def test_output_and_failure(self):
        from twisted.internet import reactor

        out = await cli.run_output(reactor, (sys.executable, "-c", "print('[]')"))
        self.assertEqual(out, b"[]\n")
        with self.assertRaises(RuntimeError) as caught:
            await cli.run_output(reactor, (sys.executable, "-c", "raise SystemExit(3)"))
        self.assertIn("failed", str(caught.exception))

    async def test_cancelling_kills_a_hung_command(self):
        """The sidecar's timeout cancels the Deferred: the process must go,
        not stay hung (one more at every refresh)."""
        from twisted.internet import reactor

        pidfile = os.path.join(tempfile.mkdtemp(prefix="sentinel-run-"), "pid")
        script = (f"import os, time; open({pidfile!r}, 'w').write(str(os.getpid())); "
                  f"time.sleep(600)")
        d = cli.run_output(reactor, (sys.executable, "-c", script))
        while not os.path.exists(pidfile) or not open(pidfile).read():
            await task.deferLater(reactor, 0.02, lambda: None)
        pid = int(open(pidfile).read())
        d.cancel()
        with self.assertRaises(defer.CancelledError):
            await d
        for _ in range(500):  # reaped by the reactor once it is dead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await task.deferLater(reactor, 0.02, lambda: None)
        self.fail(f"process {pid} still runs")
