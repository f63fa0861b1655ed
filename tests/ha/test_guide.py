"""
The user guide's "HA verification checklist" (../shared/seed/CLUSTER_HA.md
and docs/CLUSTER_HA.md, steps 0-5 and "What to capture"), run the way a
user runs it, on two nodes in network namespaces.

Each node runs exactly what deploy/compose/docker-compose.ha.yml runs
(L{tests.ha.compose}): the daemon image's ``twistd --nodaemon --pidfile=
sentinel`` and the sidecar's ``sentinel-keepalived run``, with the
compose file's environment (``/data`` mapped to the node's directory) and
nothing else: default ports (DNS 53 on every address, so the VIP is served
without being configured; HTTP 8080), default sync freshness (20 s).  The
checklist's commands are done as their equivalents: ``docker compose stop
sentinel`` is SIGTERM to the daemon only (the sidecar keeps running),
``curl http://127.0.0.1:8080/...`` is asked from inside the node.  The
setup before it follows the guide's Steps 1, 2 and 4: both nodes deployed
(sidecars idle), VIP failover enabled with the VIP as an IP only and the
interface left to auto-detection (the namespaces get a default route),
the leader enabled with the VIP URL, the follower joined with the code.
"""

import json
import re
import signal
import time

from sentinel.ha import files
from tests.ha import compose, product
from tests.ha.lan import HANDOVER, SANITY, Prober
from tests.ha.netns import ADDRESSES, VIP
from tests.ha.product import PRIORITY, VIP_URL, SentinelNode, ask, record
from tests.ha.test_failover import LanCase

LOCAL = "http://127.0.0.1:8080"  # the checklist's curl, on the node itself
READONLY = "This node is a follower. Make changes on the leader/VIP."
NOBODY = f"http://{ADDRESSES['c']}:8080"  # reachable, but nothing listens there
# compose stop: SIGTERM, then SIGKILL after the service's stop_grace_period
# (default 10 s).
DEFAULT_GRACE = 10.0


class ComposeNode(SentinelNode):
    """A node whose processes are the compose file's."""

    def mapping(self):
        return {"/data": self.data_dir, "/run/sentinel-keepalived": self.paths.runtime_dir}

    def start_daemon(self):
        argv, env = compose.service_process("sentinel", self.mapping())
        env["SENTINEL_UPSTREAMS"] = f"127.0.0.1:{self.upstream_port}"
        self.daemon = self.lan.spawn(self.host, compose.program(argv), self.log_path("daemon"),
                                     env)

    def start_sidecar(self):
        argv, env = compose.service_process("keepalived", self.mapping())
        assert env["CLUSTER_ROLE_FILE"] == self.paths.role_file, env
        self.sidecar = self.lan.spawn(self.host, compose.program(argv),
                                      self.log_path("sidecar"), env)
        self.lan.watch_pid_file(f"{self.paths.runtime_dir}/keepalived.pid", self.paths.conf)
        return self.sidecar

    def local(self, method, path, body=None, auth=None):
        return self.http(method, path, body, auth, base=LOCAL)

    def enable_vip_failover(self):
        """Step 2 of the setup as the guide says it: VIP as an IP only, the
        same password, multicast, the interface left to auto-detection."""
        dns = getattr(product, "DNS_SETTINGS", None)  # access for the test LAN, if needed
        if dns:
            self.api("PUT", "/api/dns/settings", dns)
        answer = self.api("PUT", "/api/cluster/ha/config", {
            "enabled": True, "vip": VIP, "password": "a|b&c", "mode": "multicast",
            "priority": PRIORITY[self.host]})
        assert (answer["interface"], answer["vip"]) == ("eth0", f"{VIP}/32"), answer
        return answer

    def raw_role(self):
        with open(self.paths.role_file, "rb") as f:
            return f.read()


class GuideChecklistTests(LanCase):
    def setUp(self):
        super().setUp()
        self.nodes = {h: ComposeNode(self.lan, h) for h in ("a", "b")}

    def ready(self, node):
        return node.local("GET", "/api/cluster/ready")

    def status(self, node, base=None):
        return node.api("GET", "/api/cluster/status", auth=self.token, base=base)

    def setup_steps_1_and_2(self, a, b):
        """Both nodes deployed (sidecars idle), admin created; then VIP
        failover enabled, on a first so that a holds the VIP."""
        for node in (a, b):
            # The LAN's default route: how the interface is auto-detected.
            node.exec(["ip", "route", "add", "default", "via", "198.18.0.1", "dev", "eth0"])
            node.start_upstream()
            node.start_daemon()
        for node in (a, b):
            node.wait_api()
            node.setup_admin()
            node.start_sidecar()
        for node in (a, b):
            node.wait_api(healthy=True)
            self.wait(lambda: (files.read_json(node.paths.netinfo_file) or {}).get(
                "suggestedInterface") == "eth0", 30, f"{node.host}'s sidecar to detect eth0")
            self.assertEqual(node.api("GET", "/api/cluster/netinfo")["suggestedInterface"],
                             "eth0")
        self.assertNotIn("keepalived: enabled", a.sidecar_log())  # idle until enabled
        a.enable_vip_failover()
        self.wait_master("a", timeout=30)
        b.enable_vip_failover()
        self.wait_vrrp("b", "BACKUP")
        self.wait_role("b", "follower")

    def test_verification_checklist(self):
        a, b = self.nodes["a"], self.nodes["b"]
        self.setup_steps_1_and_2(a, b)
        prober = Prober(self.lan, a.data_dir)

        # -- 0) Pre-flight: the sidecar's "enabled" line, the role file.
        for node, priority in ((a, 120), (b, 110)):
            log = node.sidecar_log()
            self.assertIn("(idle until HA is enabled)", log)
            self.assertRegex(log, r"keepalived: enabled interface=eth0 vip=198\.18\.0\.53/32 "
                                  rf"vrid=53 priority={priority} ")
        self.assertEqual((a.raw_role(), b.raw_role()), (b"leader\n", b"follower\n"))

        # -- 1) ready before cluster sync (both standalone), then Step 4 of the
        # setup through the VIP URL, then ready per role.
        for node in (a, b):
            self.assertEqual(self.ready(node), (200, {"ok": True, "role": "standalone"}))
        body = a.api("POST", "/api/cluster/enable-leader", {"leaderUrl": VIP_URL}, base=VIP_URL)
        self.assertEqual(body["warnings"], [])
        code = a.api("GET", "/api/cluster/join-code", base=VIP_URL)["joinCode"]
        b.api("POST", "/api/cluster/configure-follower", {"joinCode": code})
        self.token = a.auth  # the follower takes the leader's accounts
        self.wait(lambda: self.ready(b)[0] == 200, 30, "the follower ready (synced)")
        self.assertEqual(self.ready(a), (200, {"ok": True, "role": "leader"}))
        status, body = self.ready(b)
        self.assertEqual((sorted(body), body["ok"], body["role"]),
                         (["lastSync", "ok", "role"], True, "follower"))
        self.wait(lambda: b.http("GET", "/api/cluster/status", None, self.token)[0] == 200, 15,
                  "the leader's token accepted by the follower")
        for node, role in ((a, "leader"), (b, "follower")):
            body = self.status(node)
            self.assertEqual((body["effectiveRole"], body["roleOverride"], node.role()),
                             (role, role, role))
        first = self.status(b)["sync"]["lastSync"]
        self.wait(lambda: self.status(b)["sync"]["lastSync"] != first, 15,
                  "the follower's last sync to update with nothing changed")

        # -- 2) Changes on the leader (through the VIP) reach the follower.
        a.api("POST", "/api/clients", {"name": "guide-dummy", "addresses": ["198.18.0.77"]},
              expect=201, auth=self.token, base=VIP_URL)
        a.api("PATCH", "/api/settings/ui", {"theme": "dark"}, auth=self.token, base=VIP_URL)
        a.api("POST", "/api/dns/rewrites", {"domain": "guide.home.test",
                                            "answer": "198.18.0.42"},
              expect=201, auth=self.token, base=VIP_URL)
        self.wait(lambda: ask(self.lan, b.address, "guide.home.test", patience=2)
                  == ("NOERROR", ["198.18.0.42"]), 15, "the rewrite on the follower")
        clients = b.api("GET", "/api/clients", auth=self.token)
        self.assertIn("guide-dummy", json.dumps(clients))
        self.assertEqual(b.api("GET", "/api/settings/ui", auth=self.token)["theme"], "dark")
        self.assertEqual(self.ready(b)[1]["ok"], True)

        # -- 3) The follower's read-only guard; /api/cluster/* stays allowed.
        status, err = b.http("PATCH", "/api/settings/ui", {"theme": "light"}, self.token)
        self.assertEqual((status, err["error"], err["message"]),
                         (409, "FOLLOWER_READONLY", READONLY))
        self.assertEqual(b.api("GET", "/api/settings/ui", auth=self.token)["theme"], "dark")
        ha = b.api("GET", "/api/cluster/ha/config", auth=self.token)
        self.assertEqual(ha["priority"], 110)  # HA settings are per node: not synced
        b.api("PUT", "/api/cluster/ha/config",
              {k: ha[k] for k in ("enabled", "vip", "interface", "priority", "mode")},
              auth=self.token)

        # -- 4) Failover: `docker compose stop sentinel` on the VIP holder.
        self.assertEqual((self.lan.vip_owners(), a.role()), (["a"], "leader"))
        prober.wait_answering(self.lan)
        stopped_at = time.time()
        a.daemon.send_signal(signal.SIGTERM)
        gap = self.measure(prober, stopped_at, "b")
        record("SIGTERM leader daemon (compose stop), multicast", gap)
        self.assertLess(gap, SANITY)
        self.assert_took_over("b", HANDOVER)
        # A clean shutdown within compose's grace period (no SIGKILL needed);
        # twistd then re-raises the signal, as its exit status.
        self.assertEqual(a.daemon.wait(DEFAULT_GRACE), -signal.SIGTERM)
        with open(a.log_path("daemon")) as f:
            self.assertIn("Main loop terminated.", f.read())
        self.assertIsNone(a.sidecar.poll())  # only the daemon was stopped
        # b's role file said leader before b counted as MASTER (wait_master);
        # a's sidecar writes follower when its own keepalived tells it about
        # FAULT, independently of b: it may come a little later.
        self.wait(lambda: (a.raw_role(), b.raw_role()) == (b"follower\n", b"leader\n"), 15,
                  "role files to say follower on a, leader on b")
        body = self.status(b, base=VIP_URL)
        self.assertEqual((body["effectiveRole"], body["failover"], body["readOnly"]),
                         ("leader", True, True))
        self.assertEqual(ask(self.lan, VIP, "guide.home.test"), ("NOERROR", ["198.18.0.42"]))
        # `docker compose start sentinel`: nopreempt, the VIP stays on b.
        a.start_daemon()
        a.wait_api(healthy=True)
        self.wait_vrrp("a", "BACKUP")
        self.stays("b")
        self.assertEqual(a.raw_role(), b"follower\n")
        body = self.status(a)
        self.assertEqual((body["configuredRole"], body["effectiveRole"]), ("leader", "follower"))
        self.assertIn("standby", body["message"])
        # Moving the VIP back (docs/CLUSTER_HA.md): one request on the holder.
        before = self.status(b)["sync"]["lastSync"]
        b.api("POST", "/api/cluster/ha/release", {}, expect=202, auth=self.token, base=VIP_URL)
        self.wait_master("a")
        self.wait(lambda: self.status(b)["sync"]["lastSync"] != before, 30,
                  "b syncing from a again")
        self.assertEqual(self.ready(b)[0], 200)

        # -- 5) Readiness gating: an unreachable leader URL on the follower.
        body = b.api("POST", "/api/cluster/leader-url", {"leaderUrl": NOBODY}, auth=self.token)
        self.assertEqual((body["reachable"], body["error"]["code"]),
                         (False, "LEADER_UNREACHABLE"))
        self.wait(lambda: self.ready(b)[0] == 503, 40, "the follower not ready")
        status, body = self.ready(b)
        self.assertEqual((body["ok"], body["role"]), (False, "follower"))
        self.assertIn("no successful sync in the last 20 s", body["reason"])
        self.wait_vrrp("b", "FAULT", timeout=10)
        self.assertEqual(b.raw_role(), b"follower\n")
        self.assertEqual(self.status(b)["sync"]["lastError"]["code"], "LEADER_UNREACHABLE")
        status, err = a.http("POST", "/api/cluster/ha/release", {}, self.token, base=VIP_URL)
        self.assertEqual((status, err["error"]), (409, "NO_READY_PEER"))
        self.assertEqual(self.lan.vip_owners(), ["a"])
        # Put the VIP URL back: ready again, back in the election.
        body = b.api("POST", "/api/cluster/leader-url", {"leaderUrl": VIP_URL}, auth=self.token)
        if not body["reachable"]:
            self.fail_with_logs(str(body))
        self.wait(lambda: self.ready(b)[0] == 200, 30, "the follower ready again")
        self.wait_vrrp("b", "BACKUP", timeout=10)

        # -- What to capture: the files the guide cats are there and readable;
        # config.json holds the VRRP password only sealed.
        for node in (a, b):
            with open(node.paths.config_file) as f:
                text = f.read()
            self.assertNotIn("a|b&c", text)
            json.loads(text)
            self.assertEqual(set(json.load(open(node.paths.status_file))) >= {
                "vrrpState", "role", "daemonAlive", "lastError"}, True)
        self.assertEqual((a.raw_role(), b.raw_role()), (b"leader\n", b"follower\n"))
        self.assertTrue(re.search(r"Entering MASTER STATE", b.sidecar_log()))
