"""
The Cluster / HA wizard in the browser on two real daemons: Step 1 (VIP),
Step 2 on the leader (leader URL, Enable Leader, Load Join Code, Copy),
Step 3 on the other node (paste, Configure; the success message says to
log in with the leader's admin account, and when the first sync ends the
session the UI goes to the login page and says why), the follower's fresh
status, its read-only banner and read-only edit controls, the user guide's
check of the follower guard (toggle a setting on the follower -> the 409
message), the follower's leader URL, and the 409 message when a page that
was loaded from the leader through the VIP sends a change after the VIP
moved to the follower.
"""

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.support.ports import free_port
from tests.ui.admin import PASSWORD, USERNAME, Admin, require_api, wait_started
from tests.ui.browser import BrowserMixin, keep_log
from tests.ui.vip import Vip

READONLY = "This node is a follower. Make changes on the leader/VIP."
NODE_B_PASSWORD = "node B's own password"  # replaced by the leader's at the first sync

# Records whether an element matching the selector ever showed the text,
# even if the page moved on before a test could look (the session ends
# within moments of joining).
RECORD_SHOWN = """([selector, text]) => {
  window.__shown = false;
  const seen = () => [...document.querySelectorAll(selector)].some((el) => el.textContent.includes(text));
  new MutationObserver(() => { if (seen()) window.__shown = true; })
    .observe(document.body, { childList: true, subtree: true, characterData: true });
}"""


def log_in(page, path="/", password=PASSWORD):
    """Open ``path`` through the login page (which skips itself when the
    session is still valid)."""
    from urllib.parse import quote

    from playwright.sync_api import expect

    page.goto("/login?next=" + quote(path))
    password_box = page.locator("input[name=password]")
    expect(password_box.or_(page.get_by_role("navigation", name="Main"))).to_be_visible()
    if password_box.count():
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"^http://[^/]+" + re.escape(path) + "$"))


class ClusterWizardTests(BrowserMixin, SynchronousTestCase):
    def test_wizard_follower_status_guard_and_409(self):
        from playwright.sync_api import expect

        node_a = keep_log(self, Daemon(self).start(), "cluster-node-a")
        node_b = keep_log(self, Daemon(self).start(), "cluster-node-b")
        require_api(node_a, "/api/cluster/status", "/api/rules")
        wait_started(node_b)
        Admin(node_a).setup()
        Admin(node_b).setup(password=NODE_B_PASSWORD)
        vip = Vip(self, node_a.http_port)  # node A owns the "VIP"

        # Step 1 on node A: the VIP settings; a bad value is explained.
        leader = self.open_page(vip.url, name="cluster-leader")
        log_in(leader, "/cluster")
        step2 = leader.locator("#step-leader")
        expect(step2.locator(".alert.warn")).to_contain_text("No VIP is configured")
        step1 = leader.locator("#step-vip")
        expect(step1.get_by_role("heading")).to_have_text(re.compile(r"Step 1 — VIP / Keepalived \(VRRP\)$"))
        step1.get_by_label("Enable VIP failover").check()
        step1.get_by_label("VIP", exact=True).fill("198.18.0.300")
        step1.get_by_label("Shared VRRP password").fill("s3cret")
        step1.get_by_label("Interface").fill("eth0")
        step1.get_by_label("Priority").fill("120")
        step1.get_by_role("button", name="Save & Apply").click()
        expect(step1.get_by_role("alert").filter(has_text="198.18.0.300")).to_be_visible()
        expect(step1.get_by_label("VIP", exact=True)).to_have_attribute("aria-invalid", "true")
        step1.get_by_label("VIP", exact=True).fill("198.18.0.53/24")
        step1.get_by_role("button", name="Save & Apply").click()
        expect(leader.locator(".toast").filter(has_text="Saved.")).to_be_visible()
        leader.reload()
        expect(step1.get_by_label("VIP", exact=True)).to_have_value("198.18.0.53/24")
        expect(step1.get_by_label("Priority")).to_have_value("120")
        expect(step1.get_by_label("Shared VRRP password")).to_have_attribute(
            "placeholder", "(set; leave empty to keep)")

        # Step 2 on node A: the leader URL is prefilled with the VIP URL (the
        # VIP address, this UI's port); another address gets a warning.  The
        # test's stand-in VIP is a loopback port, so that is what we use.
        expect(step2.get_by_role("heading")).to_have_text(re.compile(r"Step 2 — Leader Setup$"))
        url = step2.get_by_label("Leader URL")
        expect(url).to_have_value(f"http://198.18.0.53:{vip.port}")
        expect(step2.locator(".alert.warn")).to_be_empty()
        url.fill(vip.url)
        expect(step2.locator(".alert.warn")).to_contain_text("This is not the VIP URL (VIP 198.18.0.53)")
        # The Join Code exists only on the leader: Load is disabled, and says why.
        load = step2.get_by_role("button", name="Load Join Code")
        expect(load).to_be_disabled()
        expect(load).to_have_accessible_description("Enable Leader first: Join Codes come from the leader.")
        step2.get_by_role("button", name="Enable Leader").click()
        expect(leader.locator("#effective-role")).to_have_text("leader")
        expect(leader.locator("#cluster-badge")).to_contain_text("Leader")
        expect(load).to_be_enabled()
        load.click()
        code = step2.get_by_label("Join Code")
        expect(code).not_to_have_value("")
        step2.get_by_role("button", name="Copy").click()
        expect(leader.locator(".toast").filter(has_text="Join Code copied.")).to_be_visible()
        copied = leader.evaluate("navigator.clipboard.readText()")
        self.assertEqual(copied, code.input_value())

        # A page on a data page, loaded from the leader through the VIP.
        stale = self.open_page(vip.url, name="cluster-stale")
        log_in(stale, "/filtering/rules")
        expect(stale.get_by_role("button", name="Add rule")).to_be_enabled()

        # Step 3 on node B (logged in with its own account): paste the code,
        # Configure.  The success message says to log in with the leader's
        # admin account from now on; the first sync replaces node B's
        # accounts and sessions, so the UI soon goes to the login page and
        # says why (no raw error).
        follower = self.open_page(node_b.base_url, name="cluster-follower")
        log_in(follower, "/cluster", password=NODE_B_PASSWORD)
        step3 = follower.locator("#step-follower")
        expect(step3.get_by_role("heading")).to_have_text(re.compile(r"Step 3 — Configure Follower$"))
        follower.evaluate(RECORD_SHOWN, ["#joined", "log in to this node with the leader's admin account"])
        step3.get_by_label("Join Code").fill(copied)
        step3.get_by_role("button", name="Configure").click()
        dialog = follower.get_by_role("dialog")
        expect(dialog).to_contain_text("log in with the leader's admin account")
        dialog.get_by_role("button", name="Configure follower").click()
        expect(follower).to_have_url(re.compile(r"/login\?next=%2Fcluster&ended=1$"), timeout=20000)
        self.assertTrue(follower.evaluate("window.__shown"), "the Step 3 success message was never shown")
        notice = follower.locator("#login-notice")
        expect(notice).to_contain_text("Your session has ended.")
        expect(notice).to_contain_text("log in with the leader's admin username and password")
        expect(follower.get_by_text("Log in first")).to_have_count(0)
        follower.get_by_label("Username").fill(USERNAME)
        follower.get_by_label("Password").fill(NODE_B_PASSWORD)
        follower.get_by_role("button", name="Log in").click()
        expect(follower.get_by_role("alert")).to_have_text("Wrong username or password.")
        follower.get_by_label("Password").fill(PASSWORD)
        follower.get_by_role("button", name="Log in").click()
        expect(follower).to_have_url(re.compile(r"/cluster$"))

        # The follower's status: role follower, last sync fresh and updating.
        follower.goto("/status")
        expect(follower.locator("#effective-role")).to_have_text("follower")
        expect(follower.locator("#cluster-status")).to_contain_text("Role (effectiveRole)")
        expect(follower.locator("#cluster-status")).to_contain_text("Follower last sync")
        expect(follower.locator("#last-sync")).to_contain_text(re.compile(r"just now|\d+ s ago"))
        expect(follower.locator("#last-error")).to_have_text("none")
        expect(follower.locator("#cluster-badge")).to_contain_text(re.compile(r"Follower · synced"))

        # Read-only banner with a link to the leader.
        banner = follower.locator("#readonly-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(READONLY)
        expect(banner.get_by_role("link")).to_have_attribute("href", vip.url)

        # The guide's check of the guard: on the follower, toggle a setting.
        # The controls are marked read-only (and say why) yet can be used,
        # by keyboard too: the change goes to this node, which refuses it,
        # and the UI shows its 409 message.
        before = Admin(node_b).login().get("/api/dns/settings")["serve_stale"]
        follower.goto("/settings")
        toggle = follower.get_by_label("Serve stale answers")
        expect(toggle).to_have_attribute("aria-disabled", "true")
        expect(toggle).to_have_accessible_description(re.compile(re.escape(READONLY)))
        toggle.focus()
        expect(toggle).to_be_focused()
        follower.keyboard.press("Space")
        expect(toggle).to_be_checked(checked=not before)
        save = follower.get_by_role("button", name="Save settings")
        expect(save).to_be_disabled()  # aria-disabled: marked, still operable
        save.focus()
        follower.keyboard.press("Enter")
        expect(follower.get_by_role("alert").filter(has_text=READONLY)).to_be_visible()
        self.assertEqual(Admin(node_b).login().get("/api/dns/settings")["serve_stale"], before)
        follower.goto("/filtering/rules")
        expect(follower.get_by_role("button", name="Add rule")).to_be_disabled()
        expect(follower.get_by_label("Domain pattern")).to_have_attribute("aria-disabled", "true")

        # The follower's leader URL (Step 3 on a follower; the guide's way to
        # break sync on purpose): an unreachable one is saved with a warning
        # and the status shows the error; then back to the VIP URL.  A new
        # leader URL means a full sync, which drops sessions opened on this
        # follower (sessions are the leader's): the UI says so again.
        follower.goto("/cluster")
        leader_url = step3.get_by_label("Leader URL")
        expect(leader_url).to_have_value(vip.url)
        leader_url.fill(f"http://127.0.0.1:{free_port()}")
        step3.get_by_role("button", name="Save Leader URL").click()
        expect(step3.locator(".alert.warn")).to_contain_text("Saved, but the leader cannot be reached")
        expect(follower.locator("#last-error")).to_contain_text("LEADER_UNREACHABLE", timeout=20000)
        leader_url.fill(vip.url)
        step3.get_by_role("button", name="Save Leader URL").click()
        expect(follower.locator(".toast").filter(has_text="Leader URL saved.")).to_be_visible()
        expect(follower).to_have_url(re.compile(r"/login\?next=%2Fcluster&ended=1$"), timeout=20000)
        log_in(follower, "/cluster")
        expect(follower.locator("#last-error")).to_contain_text("synced successfully since")

        # The leader lists the follower.
        leader.reload()
        expect(leader.locator("#cluster-status")).to_contain_text("Followers seen")
        expect(leader.locator("#cluster-status tbody tr")).to_have_count(1)

        # Failover: the VIP moves to node B.  The page loaded from the
        # leader sends a change; node B refuses it and the UI says why.
        # Its status poll (every 15 s) may reach node B before the user acts:
        # the controls are then marked read-only (aria-disabled, which a
        # mouse click waits out for good), yet still operable by keyboard.
        # Made by keyboard, the change goes out either way.
        vip.move_to(node_b.http_port)
        stale.get_by_label("Domain pattern").focus()
        stale.keyboard.press("Control+A")
        stale.keyboard.type("after-failover.example")
        stale.get_by_role("button", name="Add rule").focus()
        stale.keyboard.press("Enter")
        expect(stale.get_by_role("alert").filter(has_text=READONLY)).to_be_visible()
        expect(stale.locator("#readonly-banner")).to_be_visible()
        expect(stale.get_by_role("button", name="Add rule")).to_be_disabled()

        # Leaving the cluster: standalone again, the banner goes, edits are back.
        follower.goto("/cluster")
        follower.get_by_role("button", name="Leave cluster").click()
        follower.get_by_role("dialog").get_by_role("button", name="Leave cluster").click()
        expect(follower.locator("#effective-role")).to_have_text("standalone")
        expect(follower.locator("#readonly-banner")).to_be_hidden()
        follower.goto("/filtering/rules")
        expect(follower.get_by_role("button", name="Add rule")).to_be_enabled()
        expect(follower.get_by_label("Domain pattern")).not_to_have_attribute("aria-disabled", "true")


def wait_role(daemon, role, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = daemon.get("/api/cluster/ready")
        if r.json().get("role") == role:
            return
        time.sleep(0.05)
    raise AssertionError(f"{daemon.base_url} never acted as {role}: {r.body!r}")


class FakeSidecar:
    """
    What the keepalived sidecar shares with the daemon, as files in its data
    directory (see sentinel.ha.release): status.json (VRRP state, the
    release request's progress), peers.json (nodes heard on VRRP), and it
    takes release.json requests, reporting them "scheduled".
    """

    def __init__(self, testcase, daemon):
        import os
        import threading

        self.dir = os.path.join(daemon.data_dir, "sentinel", "ha")
        self.requests = []
        self.vrrp_state = None
        self._stop = threading.Event()
        thread = threading.Thread(target=self._take_requests, daemon=True)
        thread.start()
        testcase.addCleanup(thread.join, 5)
        testcase.addCleanup(self._stop.set)

    def report(self, vrrp_state, release=None):
        from sentinel.ha import files

        self.vrrp_state = vrrp_state
        files.write_json(f"{self.dir}/status.json", {
            "vrrpState": vrrp_state, "release": release, "haEnabled": True,
            "updatedAt": time.time()}, 0o644)

    def hear(self, *addresses):
        from sentinel.ha import files

        files.write_json(f"{self.dir}/peers.json", {"listening": True, "peers": {
            a: {"priority": 110, "lastSeen": time.time()} for a in addresses}}, 0o644)

    def _take_requests(self):
        import json
        import os

        path = f"{self.dir}/release.json"
        while not self._stop.wait(0.05):
            try:
                with open(path) as f:
                    request = json.load(f)
                os.unlink(path)
            except (OSError, ValueError):
                continue
            self.requests.append(request)
            self.report(self.vrrp_state, {"id": request["id"], "state": "scheduled"})


class HandOverTests(BrowserMixin, SynchronousTestCase):
    def test_hand_over_the_vip_to_a_ready_peer(self):
        """On the VIP holder, with another node ready, the Status card
        offers "Hand over the VIP" (POST /api/cluster/ha/release)."""
        import os

        from playwright.sync_api import expect

        from sentinel.ha import files

        node_a = Daemon(self)
        role_file = os.path.join(node_a.data_dir, "cluster_role")
        node_a.args += ["--role-file", role_file]
        keep_log(self, node_a.start(), "handover-node-a")
        # The peer is probed on the holder's HTTP port, at its own address.
        node_b = Daemon(self, host="127.0.0.2", http_port=node_a.http_port).start()
        require_api(node_a, "/api/cluster/ha/status")
        wait_started(node_b)
        admin = Admin(node_a).setup()
        admin.request("PUT", "/api/cluster/ha/config", {
            "enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120,
            "password": "s3cret", "mode": "multicast"}, expect=200)
        admin.post("/api/cluster/enable-leader", {"leaderUrl": f"http://198.18.0.53:{node_a.http_port}"})
        sidecar = FakeSidecar(self, node_a)
        sidecar.hear("127.0.0.2")
        sidecar.report("BACKUP")
        files.write_role(role_file, "follower")

        page = self.open_page(node_a.base_url, name="handover")
        log_in(page, "/cluster")
        status = page.locator("#status")
        expect(status.get_by_role("cell", name="127.0.0.2")).to_be_visible()
        expect(status).to_contain_text("ready")
        hand_over = status.get_by_role("button", name="Hand over the VIP")
        with page.expect_response("**/api/cluster/ha/status"):
            status.get_by_role("button", name="Refresh").click()
        expect(hand_over).to_have_count(0)  # not the VIP holder

        sidecar.report("MASTER")
        files.write_role(role_file, "leader")
        wait_role(node_a, "leader")
        status.get_by_role("button", name="Refresh").click()
        expect(page.locator("#effective-role")).to_have_text("leader")
        expect(status).to_contain_text("(VIP owner)")
        expect(hand_over).to_have_accessible_description(re.compile("127.0.0.2 is ready to take it"))
        hand_over.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Hand the VIP to 127.0.0.2?")
        dialog.get_by_role("button", name="Hand over the VIP").click()
        expect(page.locator("#release-result")).to_contain_text("The VIP moves to 127.0.0.2")
        self.assertEqual(len(sidecar.requests), 1)

        # No ready peer (node B is down): nothing to offer.
        sidecar.report("MASTER")
        node_b.stop()
        status.get_by_role("button", name="Refresh").click()
        expect(status.get_by_role("row").filter(has_text="127.0.0.2")).to_contain_text("unknown")
        expect(hand_over).to_have_count(0)
