"""
What a user does in the browser against a real daemon: first-run setup,
log in and out, add a block rule, see it enforced by DNS (dig) and listed
in the query log as blocked, and undo it from the log.
"""

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.ui.admin import PASSWORD, Admin, dig, require_api
from tests.ui.browser import BrowserMixin, keep_log


def eventually(check, timeout=10.0, interval=0.2):
    """Call check() until it stops raising AssertionError (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


class FirstRunTests(BrowserMixin, SynchronousTestCase):
    def test_setup_login_rule_dns_and_query_log(self):
        from playwright.sync_api import expect

        daemon = keep_log(self, Daemon(self).start(), "first-run")
        require_api(daemon, "/api/rules", "/api/query-logs")
        page = self.open_page(daemon.base_url)

        # First run: any page leads to the setup form.
        page.goto("/query-log")
        expect(page).to_have_url(re.compile(r"/setup$"))
        page.get_by_label("Admin username").fill("admin")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Repeat password").fill(PASSWORD + "x")
        page.get_by_role("button", name="Create admin account").click()
        expect(page.get_by_role("alert")).to_have_text("The two passwords are not the same.")
        page.get_by_label("Repeat password").fill(PASSWORD)
        page.get_by_role("button", name="Create admin account").click()
        expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

        # Setup is closed now; log out, a wrong password is explained, log in.
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/login$"))
        page.goto("/setup")
        expect(page).to_have_url(re.compile(r"/login$"))
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

        # Add a block rule in Filtering -> Rules.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Filtering").click()
        page.get_by_role("link", name="Rules").click()
        page.get_by_label("Domain pattern").fill("ads.example.com")
        page.get_by_role("button", name="Add rule").click()
        expect(page.get_by_role("cell", name="ads.example.com", exact=True)).to_be_visible()
        # A bad pattern shows the API's explanation, and the field is marked.
        page.get_by_label("Domain pattern").fill("bad..name")
        page.get_by_role("button", name="Add rule").click()
        expect(page.get_by_role("alert").filter(has_text="bad..name")).to_be_visible()
        expect(page.get_by_label("Domain pattern")).to_have_attribute("aria-invalid", "true")

        # DNS enforces it at once (the rule covers subdomains).
        status, _ = dig(daemon, "tracker.ads.example.com")
        self.assertEqual(status, "NXDOMAIN")

        # The query log lists it as blocked, with the rule as the reason.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Query log").click()
        page.get_by_label("Domain contains").fill("ads.example.com")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"/query-log\?domain=ads.example.com$"))
        row = page.locator("tbody tr", has_text="tracker.ads.example.com").first

        def listed():
            page.get_by_role("button", name="Refresh").click()
            expect(row).to_be_visible(timeout=1000)

        eventually(listed)
        expect(row).to_contain_text("blocked")
        expect(row).to_contain_text("rule ads.example.com")
        # The decision and time filters reach the API (and the URL).
        page.get_by_label("Decision").select_option("forwarded")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No queries match.")).to_be_visible()
        page.get_by_label("Decision").select_option("blocked")
        page.get_by_role("button", name="Search").click()
        expect(row).to_be_visible()
        expect(page).to_have_url(re.compile(r"decision=blocked"))
        page.get_by_label("From").fill("2099-01-01T00:00")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No queries match.")).to_be_visible()
        page.get_by_role("button", name="Last hour").click()
        expect(row).to_be_visible()

        # One click allows the domain: an allow rule beats the block rule.
        row.get_by_role("button", name="Allow tracker.ads.example.com").click()
        expect(page.locator(".toast").filter(has_text="Allowed tracker.ads.example.com")).to_be_visible()
        status, _ = dig(daemon, "tracker.ads.example.com")
        self.assertNotEqual(status, "NXDOMAIN")
        admin = Admin(daemon).login()
        rules = admin.get("/api/rules")["items"]
        self.assertIn(("tracker.ads.example.com", "allow"),
                      [(r["pattern"], r["action"]) for r in rules])
