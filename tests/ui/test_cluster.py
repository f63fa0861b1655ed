"""
The Cluster / HA wizard in the browser on two real daemons: Step 2 on the
leader (leader URL, Enable Leader, Load Join Code, Copy), Step 3 on the
other node (paste, Configure), the follower's fresh status, its read-only
banner and disabled edit controls, and the 409 message when a page that
was loaded from the leader through the VIP sends a change after the VIP
moved to the follower.
"""

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.ui.admin import PASSWORD, USERNAME, Admin, require_api, wait_started
from tests.ui.browser import BrowserMixin, keep_log
from tests.ui.vip import Vip

READONLY = "This node is a follower. Make changes on the leader/VIP."


def log_in(page, path="/"):
    """Open ``path`` through the login page (which skips itself when the
    session is still valid)."""
    from urllib.parse import quote

    from playwright.sync_api import expect

    page.goto("/login?next=" + quote(path))
    password = page.locator("input[name=password]")
    expect(password.or_(page.get_by_role("navigation", name="Main"))).to_be_visible()
    if password.count():
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"^http://[^/]+" + re.escape(path) + "$"))


def wait_ready(daemon, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = daemon.get("/api/cluster/ready")
        if r.status == 200 and r.json().get("role") == "follower":
            return
        time.sleep(0.1)
    raise AssertionError(f"{daemon.base_url} never became a ready follower: {r.body!r}")


class ClusterWizardTests(BrowserMixin, SynchronousTestCase):
    def test_wizard_follower_status_banner_and_409(self):
        from playwright.sync_api import expect

        node_a = keep_log(self, Daemon(self).start(), "cluster-node-a")
        node_b = keep_log(self, Daemon(self).start(), "cluster-node-b")
        require_api(node_a, "/api/cluster/status", "/api/rules")
        wait_started(node_b)
        Admin(node_a).setup()
        Admin(node_b).setup()
        vip = Vip(self, node_a.http_port)  # node A owns the "VIP"

        # Step 1 on node A: the VIP settings; a bad value is explained.
        leader = self.open_page(vip.url, name="cluster-leader")
        log_in(leader, "/cluster")
        step2 = leader.locator("#step-leader")
        expect(step2.locator(".alert.warn")).to_contain_text("No VIP is configured")
        step1 = leader.locator("#step-vip")
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
        url = step2.get_by_label("Leader URL")
        expect(url).to_have_value(f"http://198.18.0.53:{vip.port}")
        expect(step2.locator(".alert.warn")).to_be_empty()
        url.fill(vip.url)
        expect(step2.locator(".alert.warn")).to_contain_text("This is not the VIP URL (VIP 198.18.0.53)")
        step2.get_by_role("button", name="Load Join Code").click()
        expect(step2.get_by_role("alert").filter(has_text="enable leader mode first")).to_be_visible()
        step2.get_by_role("button", name="Enable Leader").click()
        expect(leader.locator("#effective-role")).to_have_text("leader")
        expect(leader.locator("#cluster-badge")).to_contain_text("Leader")
        step2.get_by_role("button", name="Load Join Code").click()
        code = step2.locator("#join-code")
        expect(code).not_to_have_value("")
        step2.get_by_role("button", name="Copy").click()
        expect(leader.locator(".toast").filter(has_text="Join code copied.")).to_be_visible()
        copied = leader.evaluate("navigator.clipboard.readText()")
        self.assertEqual(copied, code.input_value())

        # A page on a data page, loaded from the leader through the VIP.
        stale = self.open_page(vip.url, name="cluster-stale")
        log_in(stale, "/filtering/rules")
        expect(stale.get_by_role("button", name="Add rule")).to_be_enabled()

        # Step 3 on node B: paste the code, configure.
        follower = self.open_page(node_b.base_url, name="cluster-follower")
        log_in(follower, "/cluster")
        step3 = follower.locator("#step-follower")
        step3.get_by_label("Join code").fill(copied)
        step3.get_by_role("button", name="Configure").click()
        follower.get_by_role("dialog").get_by_role("button", name="Configure follower").click()
        expect(step3.locator(".alert.ok")).to_contain_text("Joined")

        # The follower's status: role follower, last sync fresh and updating.
        # (Its accounts are the leader's now: log in again if asked.)
        wait_ready(node_b)  # synced once: it has the leader's accounts now
        log_in(follower, "/status")
        expect(follower.locator("#effective-role")).to_have_text("follower")
        expect(follower.locator("#last-sync")).to_contain_text(re.compile(r"just now|\d+ s ago"))
        expect(follower.locator("#last-error")).to_have_text("none")
        expect(follower.locator("#cluster-badge")).to_contain_text(re.compile(r"Follower · synced"))

        # Read-only banner with a link to the leader; edit controls disabled.
        banner = follower.locator("#readonly-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(READONLY.split(".")[0])
        expect(banner.get_by_role("link")).to_have_attribute("href", vip.url)
        follower.goto("/filtering/rules")
        expect(follower.get_by_role("button", name="Add rule")).to_be_disabled()
        expect(follower.get_by_label("Domain pattern")).to_be_disabled()

        # The leader lists the follower.
        leader.reload()
        expect(leader.locator("#cluster-status")).to_contain_text("Followers seen")
        expect(leader.locator("#cluster-status tbody tr")).to_have_count(1)

        # Failover: the VIP moves to node B.  The page loaded from the
        # leader sends a change; node B refuses it and the UI says why.
        vip.move_to(node_b.http_port)
        stale.get_by_label("Domain pattern").fill("after-failover.example")
        stale.get_by_role("button", name="Add rule").click()
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
