"""
Deploy files (no Docker engine here): they parse, and everything they refer
to -- files, programs, options, environment variables, paths -- exists in
this repository and means what the guide says.
"""

import configparser
import os
import re
import shlex
import sys

import yaml
from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha import cli
from sentinel.options import OPTIONS, build_config
from tests.ha import compose
from tests.support.daemon import REPO_ROOT, TWISTD

DEPLOY = os.path.join(REPO_ROOT, "deploy")
KNOWN_ENV = {o.env for o in OPTIONS} | {env for _, env, _ in cli.OPTIONS}


def load(rel):
    with open(os.path.join(DEPLOY, rel)) as f:
        return yaml.safe_load(f)


def console_scripts():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO_ROOT, "setup.cfg"))
    lines = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(line.replace(" ", "").split("=", 1) for line in lines)


def dockerfile(rel):
    with open(os.path.join(DEPLOY, rel)) as f:
        return f.read()


class ComposeTests(SynchronousTestCase):
    def check_build(self, service):
        build = service["build"]
        context = os.path.normpath(os.path.join(DEPLOY, "compose", build["context"]))
        self.assertEqual(context, os.path.normpath(REPO_ROOT))
        self.assertTrue(os.path.isfile(os.path.join(context, build["dockerfile"])))

    def check_env(self, service):
        env = service.get("environment") or {}
        for name in env:
            self.assertIn(name, KNOWN_ENV, f"{name} is not an option's variable")
        config = build_config({}, {k: str(v) for k, v in env.items()
                                   if k in {o.env for o in OPTIONS}})
        return config

    def test_single_node(self):
        doc = load("compose/docker-compose.yml")
        s = doc["services"]["sentinel"]
        self.check_build(s)
        self.assertEqual(s["container_name"], "sentinel-dns")
        self.assertEqual(set(s["ports"]), {"53:53/udp", "53:53/tcp", "8080:8080/tcp"})
        self.assertIn("sentinel-data:/data", s["volumes"])
        self.assertEqual(self.check_env(s).data_dir, "/data")
        self.assertIn("sentinel-data", doc["volumes"])

    def test_ha_pair(self):
        doc = load("compose/docker-compose.ha.yml")
        daemon, sidecar = doc["services"]["sentinel"], doc["services"]["keepalived"]
        self.assertEqual(daemon["container_name"], "sentinel-dns")
        self.assertEqual(sidecar["container_name"], "sentinel-keepalived")
        for s in (daemon, sidecar):
            self.check_build(s)
            self.assertEqual(s["network_mode"], "host")
            self.assertIn("sentinel-data:/data", s["volumes"])
            self.assertEqual(s["environment"]["CLUSTER_ROLE_FILE"], "/data/sentinel/cluster_role")
            self.assertEqual(s["environment"]["SENTINEL_DATA_DIR"], "/data")
            self.check_env(s)
        self.assertEqual(set(sidecar["cap_add"]), {"NET_ADMIN", "NET_RAW", "NET_BROADCAST"})
        # The daemon's config.json location is where the sidecar looks.
        config = self.check_env(daemon)
        self.assertEqual(config.ha_config_file, "/data/sentinel/ha/config.json")
        self.assertEqual(config.role_file, "/data/sentinel/cluster_role")
        _, opts = cli.parse(sidecar["command"][2:], sidecar["environment"])
        self.assertEqual(opts["role-file"], config.role_file)
        self.assertEqual(os.path.join(opts["data-dir"], "sentinel", "ha", "config.json"),
                         config.ha_config_file)
        self.assertIn(sidecar["command"][0], console_scripts())
        self.assertEqual(sidecar["command"][1], "run")
        self.assertIn("sentinel-data", doc["volumes"])

    def test_ha_pair_runs_what_the_tests_run(self):
        """tests.ha.test_guide starts exactly these commands and environments."""
        mapping = {"/data": "/d", "/run/sentinel-keepalived": "/r"}
        argv, env = compose.service_process("sentinel", mapping)
        self.assertEqual(argv, ["twistd", "--nodaemon", "--pidfile=", "sentinel"])
        self.assertEqual(compose.program(argv), TWISTD + argv[1:])
        self.assertEqual((env["SENTINEL_DATA_DIR"], env["CLUSTER_ROLE_FILE"]),
                         ("/d", "/d/sentinel/cluster_role"))
        argv, env = compose.service_process("keepalived", mapping)
        self.assertEqual(argv, ["sentinel-keepalived", "run"])
        self.assertEqual(compose.program(argv)[1:],
                         [os.path.join(os.path.dirname(sys.executable), "sentinel-keepalived"),
                          "run"])
        self.assertEqual(env["SENTINEL_HA_RUNTIME_DIR"], "/r")

    def test_ha_pair_lifecycle(self):
        """`docker compose stop|start sentinel` (the checklist's failover
        exercise) touches the daemon only: nothing depends on it, which
        Compose versions would stop along with it or leave stopped; both
        come back after a crash or a reboot."""
        doc = load("compose/docker-compose.ha.yml")
        for name, s in doc["services"].items():
            self.assertNotIn("depends_on", s, name)
            self.assertEqual(s["restart"], "unless-stopped", name)
            self.assertNotIn("ports", s, name)  # host networking: ports do not apply


class DockerfileTests(SynchronousTestCase):
    def check_copies(self, text):
        for line in text.splitlines():
            if line.startswith("COPY "):
                for src in line.split()[1:-1]:
                    self.assertTrue(os.path.exists(os.path.join(REPO_ROOT, src)), src)

    def test_daemon_image(self):
        text = dockerfile("docker/Dockerfile")
        self.check_copies(text)
        self.assertIn('CMD ["twistd", "--nodaemon", "--pidfile=", "sentinel"]', text)
        self.assertTrue(os.path.exists(os.path.join(REPO_ROOT, "twisted", "plugins",
                                                    "sentinel_plugin.py")))

    def test_sidecar_image(self):
        text = dockerfile("docker/Dockerfile.keepalived")
        self.check_copies(text)
        self.assertRegex(text, r"apt-get install .*keepalived")
        self.assertRegex(text, r"apt-get install .*iproute2")  # netinfo uses `ip -j`
        self.assertIn('CMD ["sentinel-keepalived", "run"]', text)
        self.assertEqual(console_scripts()["sentinel-keepalived"], "sentinel.ha.cli:main")


class SystemdTests(SynchronousTestCase):
    def unit(self, name):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(os.path.join(DEPLOY, "systemd", name))
        return parser

    def test_daemon_unit(self):
        u = self.unit("sentinel.service")
        argv = shlex.split(u["Service"]["ExecStart"])
        self.assertEqual(os.path.basename(argv[0]), "twistd")
        self.assertEqual(argv[1:], ["--nodaemon", "--pidfile=", "sentinel"])
        self.assertIn("CAP_NET_BIND_SERVICE", u["Service"]["AmbientCapabilities"])

    def test_sidecar_unit(self):
        u = self.unit("sentinel-keepalived.service")
        argv = shlex.split(u["Service"]["ExecStart"])
        self.assertIn(os.path.basename(argv[0]), console_scripts())
        command, opts = cli.parse(argv[1:], {"SENTINEL_HA_RUNTIME_DIR":
                                             "/run/sentinel-keepalived"})
        self.assertEqual(command, "run")
        self.assertEqual(u["Service"]["RuntimeDirectory"], "sentinel-keepalived")
        env = u["Service"]["Environment"]
        self.assertIn("SENTINEL_HA_RUNTIME_DIR=/run/" + u["Service"]["RuntimeDirectory"], env)
        self.assertEqual(u["Service"]["KillMode"], "mixed")
        self.assertEqual(u["Service"]["EnvironmentFile"],
                         self.unit("sentinel.service")["Service"]["EnvironmentFile"])


class GuideTests(SynchronousTestCase):
    """docs/CLUSTER_HA.md refers only to files and containers that exist."""

    def setUp(self):
        with open(os.path.join(REPO_ROOT, "docs", "CLUSTER_HA.md")) as f:
            self.text = f.read()

    def test_deploy_paths_exist(self):
        paths = set(re.findall(r"deploy/[\w./-]+\w", self.text))
        self.assertTrue(paths)
        for path in paths:
            self.assertTrue(os.path.exists(os.path.join(REPO_ROOT, path)), path)

    def test_container_and_service_names(self):
        doc = load("compose/docker-compose.ha.yml")
        names = {s["container_name"] for s in doc["services"].values()}
        for name in re.findall(r"docker (?:logs|exec)(?: -\S+)* (\S+)", self.text):
            self.assertIn(name, names)
        for verb, service in re.findall(r"docker-compose\.ha\.yml (stop|start|restart) (\S+)",
                                        self.text):
            self.assertIn(service, doc["services"])
