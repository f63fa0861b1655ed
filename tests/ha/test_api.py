"""
/api/cluster/ha/*, /api/cluster/netinfo, /api/cluster/peer-status through the
real Site (admission, body parsing, errors) on a loopback port, with treq.
"""

import json
import os
import stat
import tempfile

import treq
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from sentinel.api.base import ApiError, Principal
from sentinel.api.ha import HaApi
from sentinel.api.site import Gate, Site
from sentinel.config import Config
from sentinel.crypto import SecretBox, load_or_create_key
from sentinel.ha import files
from sentinel.ha.state import LOCAL_KEY, HaPublisher, HaState

TOKEN = "Bearer admin-token"
GOOD = {"enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120,
        "password": "a|b&c"}


class FakeStore:
    """get_local/set_local as the store has them (node_state)."""

    def __init__(self):
        self.local = {}

    def get_local(self, key, default=None):
        return defer.succeed(json.loads(json.dumps(self.local.get(key, default))))

    def set_local(self, key, value):
        self.local[key] = json.loads(json.dumps(value))
        return defer.succeed(None)


class Admin:
    def authenticate(self, request):
        ok = request.getHeader(b"authorization") == TOKEN.encode()
        return defer.succeed(Principal("admin", "token") if ok else None)


class ReadOnly:
    """A follower's guard: refuses every mutation that is not exempt."""

    async def check(self, call):
        raise ApiError(409, "FOLLOWER_READONLY", "Make changes on the leader.")


class ApiCase(TestCase):
    """The HA API on a real Site on a loopback port; peers answer from peer_answers."""

    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="sentinel-haapi-")
        self.config = Config(data_dir=self.data, http_port=18080, http_interface="198.18.0.2",
                             role_file=os.path.join(self.data, "sentinel", "cluster_role"))
        self.box = SecretBox(load_or_create_key(self.config.key_file))
        self.store = FakeStore()
        self.state = HaState(self.store, self.box, self.config, reactor)
        self.fetched = []
        self.peer_answers = {}

        def fetch(url, timeout):
            self.fetched.append(url)
            answer = self.peer_answers.get(url)
            if isinstance(answer, Exception):
                return defer.fail(answer)
            if answer is None:
                return defer.fail(ConnectionRefusedError("refused"))
            return defer.succeed(answer)

        self.members = []
        self.api = HaApi(self.state, reactor, fetch, known_peers=lambda: self.members)
        site = Site([self.api],
                    Gate(authenticators={"admin": Admin()}, guard=ReadOnly()))
        self.port = reactor.listenTCP(0, site.site(), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"

    async def call(self, method, path, body=None, auth=TOKEN):
        headers = {"Authorization": [auth]} if auth else {}
        kw = {}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            headers["Content-Type"] = ["application/json"]
        r = await treq.request(method, self.base + path, headers=headers, persistent=False,
                               **kw)
        return r.code, json.loads((await treq.content(r)) or b"null")

    def config_file(self):
        return files.read_json(self.config.ha_config_file)


class HaApiTests(ApiCase):
    # -- config -------------------------------------------------------------------

    async def test_needs_admin(self):
        for method, path in (("GET", "/api/cluster/ha/config"), ("PUT", "/api/cluster/ha/config"),
                             ("POST", "/api/cluster/ha/release"),
                             ("GET", "/api/cluster/netinfo"), ("GET", "/api/cluster/peer-status"),
                             ("GET", "/api/cluster/ha/status")):
            code, body = await self.call(method, path, {} if method != "GET" else None,
                                         auth=None)
            self.assertEqual((code, body["error"]), (401, "UNAUTHENTICATED"), path)

    async def test_defaults_before_configuration(self):
        code, body = await self.call("GET", "/api/cluster/ha/config")
        self.assertEqual(code, 200)
        self.assertEqual((body["enabled"], body["virtualRouterId"], body["passwordSet"]),
                         (False, 53, False))

    async def test_put_writes_config_json_0600_with_sealed_password(self):
        code, body = await self.call("PUT", "/api/cluster/ha/config", GOOD)
        self.assertEqual(code, 200, body)
        self.assertTrue(body["passwordSet"])
        self.assertNotIn("password", body)
        path = self.config.ha_config_file
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            raw = f.read()
        self.assertNotIn("a|b&c", raw)  # safe to paste into a bug report
        doc = json.loads(raw)
        self.assertEqual(doc["vip"], "198.18.0.53/24")
        self.assertEqual(doc["daemon"]["readyUrl"], "http://198.18.0.2:18080/api/cluster/ready")
        self.assertEqual(self.box.decrypt_text(doc["password"]["sealed"], files.PASSWORD_AAD),
                         "a|b&c")
        # node-local, never a synced entity; the password only sealed
        stored = self.store.local[LOCAL_KEY]
        self.assertNotIn("a|b&c", json.dumps(stored))
        code, again = await self.call("GET", "/api/cluster/ha/config")
        self.assertEqual(again["priority"], 120)
        self.assertTrue(again["passwordSet"])

    async def test_password_is_kept_when_absent_and_required_when_enabling(self):
        body = dict(GOOD)
        del body["password"]
        code, err = await self.call("PUT", "/api/cluster/ha/config", body)
        self.assertEqual((code, err["error"]), (400, "HA_PASSWORD_REQUIRED"))
        await self.call("PUT", "/api/cluster/ha/config", GOOD)
        code, ok = await self.call("PUT", "/api/cluster/ha/config", dict(body, priority=90))
        self.assertEqual((code, ok["passwordSet"], ok["priority"]), (200, True, 90))
        code, err = await self.call("PUT", "/api/cluster/ha/config", dict(body, password=None))
        self.assertEqual((code, err["error"]), (400, "HA_PASSWORD_REQUIRED"))

    async def test_validation_codes_and_nothing_written(self):
        cases = [
            ({"vip": "198.18.0.53\n}"}, "HA_INVALID_VIP", "vip"),
            ({"interface": "eth0 dev lo"}, "HA_INVALID_INTERFACE", "interface"),
            ({"virtualRouterId": 300}, "HA_INVALID_VRID", "virtualRouterId"),
            ({"priority": 255}, "HA_INVALID_PRIORITY", "priority"),
            ({"advertInterval": 0}, "HA_INVALID_ADVERT_INTERVAL", "advertInterval"),
            ({"mode": "anycast"}, "HA_INVALID_MODE", "mode"),
            ({"mode": "unicast"}, "HA_PEERS_REQUIRED", "unicastPeers"),
            ({"password": 'x" }'}, "HA_INVALID_PASSWORD", "password"),
            ({"password": "x" * 9}, "HA_INVALID_PASSWORD", "password"),
            ({"sourceIp": "198.18.0.53"}, "HA_INVALID_SOURCE_IP", "sourceIp"),
            ({"bogus": 1}, "HA_UNKNOWN_FIELD", "bogus"),
        ]
        for change, code, field in cases:
            status, err = await self.call("PUT", "/api/cluster/ha/config", dict(GOOD, **change))
            self.assertEqual((status, err["error"]), (400, code), change)
            self.assertEqual(err["details"][0]["field"], field)
        self.assertFalse(os.path.exists(self.config.ha_config_file))
        self.assertEqual(self.store.local, {})

    async def test_not_json_and_not_an_object(self):
        r = await treq.put(self.base + "/api/cluster/ha/config", data=b"{",
                           headers={"Authorization": [TOKEN],
                                    "Content-Type": ["application/json"]}, persistent=False)
        self.assertEqual(r.code, 400)
        self.assertEqual(json.loads(await treq.content(r))["error"], "BAD_JSON")
        code, err = await self.call("PUT", "/api/cluster/ha/config", [1])
        self.assertEqual(code, 400)

    async def test_allowed_on_a_read_only_follower(self):
        code, body = await self.call("PUT", "/api/cluster/ha/config", GOOD)
        self.assertEqual(code, 200, body)

    async def test_netinfo_cross_check(self):
        files.write_json(self.config.netinfo_file, {
            "detectedAt": reactor.seconds(),
            "interfaces": [{"name": "ens3", "addresses": ["198.18.0.2/24"]}],
            "suggestedInterface": "ens3"}, 0o644)
        code, err = await self.call("PUT", "/api/cluster/ha/config", GOOD)
        self.assertEqual((code, err["error"]), (400, "HA_UNKNOWN_INTERFACE"))
        self.assertIn("ens3", err["message"])
        code, body = await self.call("PUT", "/api/cluster/ha/config",
                                     dict(GOOD, interface=None))
        self.assertEqual((code, body["interface"]), (200, "ens3"))
        self.assertTrue(body["warnings"])

    async def test_disable_keeps_the_settings(self):
        await self.call("PUT", "/api/cluster/ha/config", GOOD)
        body = dict(GOOD, enabled=False)
        del body["password"]
        code, out = await self.call("PUT", "/api/cluster/ha/config", body)
        self.assertEqual((code, out["enabled"], out["passwordSet"]), (200, False, True))
        self.assertFalse(self.config_file()["enabled"])

    async def test_publish_on_start_rewrites_the_file(self):
        await self.call("PUT", "/api/cluster/ha/config", GOOD)
        os.unlink(self.config.ha_config_file)

        publisher = HaPublisher(self.state, lambda: defer.succeed(None))
        publisher.startService()
        await publisher.published
        self.assertEqual(self.config_file()["priority"], 120)

    async def test_config_json_that_cannot_be_written_is_explained(self):
        """A directory where config.json goes (a Docker bind mount of a file that did
        not exist creates one): one clear error, the settings kept, no traceback."""
        from twisted.logger import globalLogPublisher

        path = self.config.ha_config_file
        os.makedirs(path)
        code, body = await self.call("PUT", "/api/cluster/ha/config", GOOD)
        self.assertEqual((code, body["error"]), (500, "HA_CONFIG_NOT_WRITTEN"))
        self.assertEqual(body["message"], (
            f"{path} is a directory, so the keepalived sidecar cannot see the HA settings; "
            f"the settings are saved and are written there again at every start (or save "
            f"them again once the file can be written)"))
        code, saved = await self.call("GET", "/api/cluster/ha/config")
        self.assertEqual((saved["priority"], saved["passwordSet"]), (120, True))
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        publisher = HaPublisher(self.state, lambda: defer.succeed(None))
        publisher.startService()
        await publisher.published
        self.assertFalse([e for e in seen if e.get("log_failure")])  # no traceback
        self.assertTrue([e for e in seen if "is a directory" in str(e.get("error", ""))])
        os.rmdir(path)  # fixed: the next start writes it
        publisher = HaPublisher(self.state, lambda: defer.succeed(None))
        publisher.startService()
        await publisher.published
        self.assertEqual(self.config_file()["priority"], 120)

    async def test_publish_without_configuration_writes_nothing(self):
        publisher = HaPublisher(self.state, lambda: defer.succeed(None))
        publisher.startService()
        await publisher.published
        self.assertFalse(os.path.exists(self.config.ha_config_file))

    # -- sidecar reports ----------------------------------------------------------

    async def test_netinfo(self):
        code, body = await self.call("GET", "/api/cluster/netinfo")
        self.assertEqual((code, body["available"]), (200, False))
        files.write_json(self.config.netinfo_file, {"detectedAt": reactor.seconds() - 5,
                                                    "interfaces": [{"name": "eth0"}],
                                                    "suggestedInterface": "eth0"}, 0o644)
        code, body = await self.call("GET", "/api/cluster/netinfo")
        self.assertTrue(body["available"])
        self.assertEqual(body["suggestedInterface"], "eth0")
        self.assertGreaterEqual(body["ageSeconds"], 5)

    async def test_junk_in_the_sidecars_files_is_not_passed_on(self):
        """The files are input: answers stay well typed whatever they hold."""
        import jsonschema

        from sentinel.api import ha_schemas

        ha_dir = os.path.join(self.data, "sentinel", "ha")
        files.write_json(self.config.netinfo_file, {
            "detectedAt": "yesterday", "interfaces": [{"name": 7}, "eth9", {"name": "eth0",
                                                      "up": "yes", "addresses": [1, "10.0.0.2/24"]}],
            "defaultRoute": {"interface": None}, "suggestedInterface": ["eth0"]}, 0o644)
        files.write_json(os.path.join(ha_dir, "peers.json"), {
            "listening": "yes", "passwordMismatch": "198.18.0.9",
            "peers": {"198.18.0.3": {"lastSeen": "now", "priority": "high"}}}, 0o644)
        files.write_json(os.path.join(ha_dir, "status.json"), ["not", "an", "object"], 0o644)
        self.peer_answers["http://198.18.0.3:18080/api/cluster/ready"] = (
            200, b'{"ok": "sure", "role": 5}')
        for path, schema in (("/api/cluster/netinfo", ha_schemas.NETINFO_SCHEMA),
                             ("/api/cluster/peer-status", ha_schemas.PEER_STATUS_SCHEMA),
                             ("/api/cluster/ha/status", ha_schemas.HA_STATUS_SCHEMA)):
            code, body = await self.call("GET", path)
            self.assertEqual(code, 200, (path, body))
            jsonschema.validate(body, schema)
        code, body = await self.call("GET", "/api/cluster/netinfo")
        self.assertEqual(body["interfaces"], [{"name": "eth0", "up": False, "loopback": False,
                                               "mac": None, "addresses": ["10.0.0.2/24"]}])
        self.assertEqual((body["defaultRoute"], body["ageSeconds"]), (None, None))

    async def test_unreadable_sidecar_files_answer_as_absent_and_log_once(self):
        """Binary garbage, a FIFO, a directory: no hang, no 500, one log line each."""
        from twisted.logger import globalLogPublisher

        ha_dir = os.path.join(self.data, "sentinel", "ha")
        os.makedirs(ha_dir, exist_ok=True)
        with open(os.path.join(ha_dir, "status.json"), "wb") as f:
            f.write(os.urandom(512))
        os.mkfifo(os.path.join(ha_dir, "peers.json"))
        os.makedirs(self.config.netinfo_file)
        os.mkfifo(self.config.role_file)
        seen = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        for _ in range(3):  # the UI polls
            for path in ("/api/cluster/netinfo", "/api/cluster/peer-status",
                         "/api/cluster/ha/status"):
                code, body = await self.call("GET", path)
                self.assertEqual(code, 200, (path, body))
        code, body = await self.call("GET", "/api/cluster/ha/status")
        self.assertEqual((body["sidecar"], body["roleFile"]["role"]), (None, None))
        code, body = await self.call("GET", "/api/cluster/netinfo")
        self.assertFalse(body["available"])
        warnings = [e.get("error") for e in seen if "ignoring it until" in e.get("log_format", "")]
        self.assertEqual(sorted(w.split(":")[0] for w in warnings), sorted(
            os.path.join(ha_dir, n) for n in ("netinfo.json", "peers.json", "status.json")))

    async def test_status_shows_sidecar_and_role_file(self):
        files.write_json(os.path.join(self.data, "sentinel", "ha", "status.json"),
                         {"keepalived": "running", "updatedAt": reactor.seconds()}, 0o644)
        files.write_role(self.config.role_file, "leader")
        code, body = await self.call("GET", "/api/cluster/ha/status")
        self.assertEqual(body["sidecar"]["keepalived"], "running")
        self.assertEqual(body["roleFile"]["role"], "leader")

    async def test_peer_status(self):
        await self.call("PUT", "/api/cluster/ha/config",
                        dict(GOOD, mode="unicast", unicastPeers=["198.18.0.4"]))
        files.write_json(os.path.join(self.data, "sentinel", "ha", "peers.json"), {
            "listening": True, "passwordMismatch": ["198.18.0.9"],
            "peers": {"198.18.0.3": {"lastSeen": reactor.seconds() - 1, "priority": 110}}},
            0o644)
        self.peer_answers["http://198.18.0.3:18080/api/cluster/ready"] = (
            200, b'{"ok": true, "role": "follower", "secret": "x", "lastSync": 1}')
        code, body = await self.call("GET", "/api/cluster/peer-status")
        self.assertEqual(code, 200)
        by_ip = {p["address"]: p for p in body["peers"]}
        self.assertEqual(by_ip["198.18.0.3"]["ready"], {"ok": True, "role": "follower"})
        self.assertEqual(by_ip["198.18.0.3"]["vrrp"]["priority"], 110)
        self.assertIsNone(by_ip["198.18.0.4"]["ready"])
        self.assertIn("refused", by_ip["198.18.0.4"]["error"])
        self.assertTrue(by_ip["198.18.0.4"]["unicastPeer"])
        self.assertEqual(body["passwordMismatch"], ["198.18.0.9"])
        self.assertNotIn("secret", json.dumps(body))

    async def test_cluster_members_are_peers_too(self):
        """A BACKUP never advertises: the leader knows its followers from sync."""
        await self.call("PUT", "/api/cluster/ha/config", GOOD)
        files.write_json(self.config.netinfo_file, {
            "detectedAt": reactor.seconds(),
            "interfaces": [{"name": "eth0", "addresses": ["198.18.0.2/24"]}]}, 0o644)
        self.members = ["198.18.0.4", "::ffff:198.18.0.5", "127.0.0.1", "198.18.0.2",
                        "198.18.0.53", "not an address", None]
        code, body = await self.call("GET", "/api/cluster/peer-status")
        self.assertEqual([(p["address"], p["clusterMember"]) for p in body["peers"]],
                         [("198.18.0.4", True), ("198.18.0.5", True)])


class ReleaseApiTests(ApiCase):
    """POST /api/cluster/ha/release, with a stand-in sidecar answering through its files."""

    PEER = "http://198.18.0.3:18080/api/cluster/ready"

    async def holder(self, peer_ready=True):
        """This node holds the VIP; 198.18.0.3 was heard on VRRP."""
        await self.call("PUT", "/api/cluster/ha/config", GOOD)
        self.sidecar({"vrrpState": "MASTER", "release": None})
        files.write_role(self.config.role_file, "leader")
        files.write_json(os.path.join(self.data, "sentinel", "ha", "peers.json"), {
            "listening": True, "peers": {"198.18.0.3": {"lastSeen": 1.0, "priority": 110}}},
            0o644)
        if peer_ready is not None:
            self.peer_answers[self.PEER] = (200 if peer_ready else 503, json.dumps(
                {"ok": peer_ready, "role": "follower"}).encode())

    def sidecar(self, status):
        files.write_json(os.path.join(self.data, "sentinel", "ha", "status.json"), status,
                         0o644)

    def answer_requests(self, outcome, **extra):
        """Act like the sidecar: take release.json, report outcome for its id."""
        self.requests = []
        def look():
            try:
                with open(self.state.release_file) as f:
                    request = json.load(f)
            except OSError:
                return
            os.unlink(self.state.release_file)
            self.requests.append(request)
            self.sidecar({"vrrpState": "MASTER",
                          "release": {"id": request["id"], "state": outcome, **extra}})
        loop = task.LoopingCall(look)
        loop.start(0.05)
        self.addCleanup(loop.stop)

    async def test_hands_the_vip_to_a_ready_peer(self):
        await self.holder()
        self.answer_requests("scheduled")
        started = reactor.seconds()
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual(code, 202, body)
        self.assertEqual((body["state"], body["readyPeers"], body["inSeconds"]),
                         ("scheduled", ["198.18.0.3"], 1.0))
        self.assertIn(self.PEER, self.fetched)
        request = self.requests[-1]
        self.assertEqual(request["id"], body["id"])
        # The VIP moves a second after the answer, which may travel over the VIP.
        self.assertAlmostEqual(request["notBefore"] - request["requestedAt"], 1.0)
        self.assertTrue(started <= request["requestedAt"] <= reactor.seconds())

    async def test_refused_without_a_ready_peer_and_nothing_requested(self):
        for ready in (False, None):  # not ready; not answering
            self.peer_answers.clear()
            await self.holder(peer_ready=ready)
            code, body = await self.call("POST", "/api/cluster/ha/release", {})
            self.assertEqual((code, body["error"]), (409, "NO_READY_PEER"), body)
            self.assertEqual(body["details"][0]["address"], "198.18.0.3")
            self.assertFalse(os.path.exists(self.state.release_file))

    async def test_refused_unless_enabled_and_holding_the_vip(self):
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual((code, body["error"]), (409, "HA_NOT_ENABLED"))
        await self.holder()
        files.write_role(self.config.role_file, "follower")
        self.sidecar({"vrrpState": "BACKUP"})
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual((code, body["error"]), (409, "NOT_VIP_HOLDER"))
        self.assertEqual(self.fetched, [])
        files.write_role(self.config.role_file, "leader")
        for pending in ("scheduled", "releasing"):
            self.sidecar({"vrrpState": "MASTER", "release": {"id": "x", "state": pending}})
            code, body = await self.call("POST", "/api/cluster/ha/release", {})
            self.assertEqual((code, body["error"]), (409, "RELEASE_IN_PROGRESS"))
        self.assertFalse(os.path.exists(self.state.release_file))

    async def test_sidecar_not_answering_withdraws_the_request(self):
        await self.holder()
        self.api.RELEASE_ACK = 0.3
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual((code, body["error"]), (503, "SIDECAR_NOT_RESPONDING"))
        self.assertFalse(os.path.exists(self.state.release_file))

    async def test_a_request_file_that_cannot_be_written_is_a_clear_503(self):
        await self.holder()
        os.mkdir(self.state.release_file)
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual((code, body["error"]), (503, "RELEASE_NOT_WRITTEN"), body)
        self.assertIn("release.json: Is a directory", body["message"])
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_sidecar_refusal(self):
        await self.holder()
        self.answer_requests("refused", reason="the request is stale")
        code, body = await self.call("POST", "/api/cluster/ha/release", {})
        self.assertEqual((code, body["error"]), (409, "RELEASE_REFUSED"))
        self.assertIn("stale", body["message"])

    async def test_body_must_be_empty(self):
        await self.holder()
        code, body = await self.call("POST", "/api/cluster/ha/release", {"force": True})
        self.assertEqual(code, 400)
