"""
When something goes wrong under a home user's hands, in the browser
against a real daemon: a session that ends while a form is half typed
(logged out in another tab) leads through the login page back to the same
page with the unsent values (never the password), dropped once sent; a
refused change to one row of a long list is explained under that row,
which keeps its state, and the row's control cannot send it twice while
it runs; going offline is said plainly (no blank page, no browser jargon);
very long names do not widen the pages past a 375 px phone screen; the
blocklists page's 2 s redraw during a download keeps a row's error; the
query log's "Load older" goes on with the search shown, not with filters
typed since.
"""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.ui.admin import PASSWORD, USERNAME, Admin, require_api
from tests.ui.browser import BrowserMixin, keep_log
from tests.ui.test_cluster import log_in
from tests.ui.test_flows import eventually
from tests.ui.test_userdata import dig_many, held_list_server

LOG_OUT = """() => fetch('/api/auth/logout', {method: 'POST', credentials: 'same-origin',
  headers: {'Content-Type': 'application/json', Accept: 'application/json'}, body: '{}'})
  .then((r) => r.status)"""
DRAFTS = """() => Object.keys(sessionStorage).filter((k) => k.startsWith('sentinel.draft:'))
  .map((k) => [k, sessionStorage.getItem(k)])"""


def answer(status, code, message):
    return lambda route: route.fulfill(status=status, content_type="application/json",
                                       body=json.dumps({"error": code, "message": message}))


class RecoveryTests(BrowserMixin, SynchronousTestCase):
    def setUp(self):
        self.daemon = keep_log(self, Daemon(self).start(), self.id())
        require_api(self.daemon, "/api/rules", "/api/clients")
        self.admin = Admin(self.daemon).setup()

    def log_out_elsewhere(self, page):
        """The admin logs out in another tab of the same browser."""
        other = page.context.new_page()
        other.goto("/login")
        self.assertEqual(other.evaluate(LOG_OUT), 204)
        other.close()

    def log_in_again(self, page, path):
        from playwright.sync_api import expect

        expect(page).to_have_url(re.compile(r"/login\?next=.*&ended=1$"))
        expect(page.locator("#login-notice")).to_contain_text("Your session has ended.")
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"^http://[^/]+" + re.escape(path) + "$"))

    def test_unsent_form_comes_back_after_logging_in_again(self):
        from playwright.sync_api import expect

        page = self.open_page(self.daemon.base_url)
        log_in(page, "/filtering/rules")
        pattern = "very.long.name.the.user.typed.carefully.example"
        page.get_by_label("Domain pattern").fill(pattern)
        page.get_by_label("Action").select_option("allow")
        page.get_by_label("Comment").fill("the kids' homework site")
        self.log_out_elsewhere(page)
        page.get_by_role("button", name="Add rule").click()

        # Through the login page (whose password is never kept) back to the rule form.
        self.log_in_again(page, "/filtering/rules")
        expect(page.get_by_label("Domain pattern")).to_have_value(pattern)
        expect(page.get_by_label("Action")).to_have_value("allow")
        expect(page.get_by_label("Comment")).to_have_value("the kids' homework site")
        expect(page.locator(".toast").filter(has_text="Restored what you had typed")).to_be_visible()
        self.assertNotIn(PASSWORD, json.dumps(page.evaluate(DRAFTS)))
        page.get_by_role("button", name="Add rule").click()
        expect(page.locator("td code", has_text=pattern).first).to_be_visible()
        self.assertEqual(page.evaluate(DRAFTS), [])  # sent: nothing kept
        page.reload()
        expect(page.get_by_label("Domain pattern")).to_have_value("")

        # A client editor left open reopens with what was typed.
        page.goto("/clients")
        page.get_by_role("button", name="Add client").click()
        form = page.get_by_role("form", name="Add a client")
        form.get_by_label("Name", exact=True).fill("Grandma's laptop")
        form.get_by_label("IP addresses and subnets").fill("192.168.1.77")
        self.log_out_elsewhere(page)
        form.get_by_role("button", name="Add client").click()
        self.log_in_again(page, "/clients")
        form = page.get_by_role("form", name="Add a client")
        expect(form.get_by_label("Name", exact=True)).to_have_value("Grandma's laptop")
        expect(form.get_by_label("IP addresses and subnets")).to_have_value("192.168.1.77")
        form.get_by_role("button", name="Add client").click()
        expect(page.get_by_role("cell", name="Grandma's laptop", exact=True)).to_be_visible()
        self.assertEqual(page.evaluate(DRAFTS), [])

        # Leaving a page on purpose gives its draft up.
        page.goto("/local-dns")
        page.get_by_label("Domain", exact=True).fill("nas.home")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Clients").click()
        expect(page.get_by_role("heading", name="Clients", level=1)).to_be_visible()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Local DNS").click()
        expect(page.get_by_label("Domain", exact=True)).to_have_value("")
        self.assertEqual(page.problems, [])

    def test_refused_row_change_is_shown_under_its_row(self):
        from playwright.sync_api import expect

        for i in range(40):
            self.admin.post("/api/rules", {"pattern": f"site{i:02d}.example", "action": "block"})
        ids = {r["pattern"]: r["id"] for r in self.admin.get("/api/rules")["items"]}
        page = self.open_page(self.daemon.base_url, height=700)
        log_in(page, "/filtering/rules")
        last = page.locator("tbody tr", has_text="site39.example")

        # Delete refused (409 on a follower): the reason is under the row,
        # in view, with a link to the leader; the rule stays listed.
        readonly = "This node is a follower. Make changes on the leader/VIP."
        page.route(f"**/api/rules/{ids['site39.example']}", answer(409, "FOLLOWER_READONLY", readonly))
        page.route("**/api/cluster/status", lambda route: route.fulfill(
            content_type="application/json",
            body=json.dumps({"configuredRole": "follower", "leaderUrl": "http://127.0.0.1:9/"})))
        last.get_by_role("button", name="Delete rule site39.example").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        note = last.locator("xpath=following-sibling::tr[1]").get_by_role("alert")
        expect(note).to_contain_text(readonly)
        expect(note).to_be_in_viewport()
        expect(note.get_by_role("link", name="Open the leader UI (http://127.0.0.1:9/)")).to_be_visible()
        expect(last).to_be_visible()
        self.assertIn("site39.example", [r["pattern"] for r in self.admin.get("/api/rules")["items"]])
        page.unroute("**/api/cluster/status")

        # A toggle refused (503): the box keeps its state, the reason is
        # under the row; while the change runs, the box cannot send it again.
        held = []
        page.unroute(f"**/api/rules/{ids['site39.example']}")
        page.route(f"**/api/rules/{ids['site39.example']}", lambda route: held.append(route))
        box = last.get_by_role("checkbox", name="Rule site39.example enabled")
        box.click()
        expect(box).to_be_disabled()
        self.assertEqual(len(held), 1)
        down = "The database cannot be reached (connection refused)."
        held[0].fulfill(status=503, content_type="application/json",
                        body=json.dumps({"error": "STORE_UNAVAILABLE", "message": down}))
        note = last.locator("xpath=following-sibling::tr[1]").get_by_role("alert")
        expect(note).to_have_text(down)
        expect(note).to_be_in_viewport()
        expect(box).to_be_checked()
        expect(box).to_be_enabled()
        self.assertEqual(len(held), 1)
        self.assertEqual(page.locator(".alert.error").filter(has_text=down).count(), 1)

        # Tried again and accepted: the note goes, the change shows.
        page.unroute(f"**/api/rules/{ids['site39.example']}")
        box.click()
        expect(page.get_by_role("checkbox", name="Rule site39.example enabled")).not_to_be_checked()
        expect(page.get_by_role("alert").filter(has_text=down)).to_have_count(0)
        self.assertEqual(page.problems, [])

    def test_offline_is_said_plainly(self):
        from playwright.sync_api import expect

        page = self.open_page(self.daemon.base_url)
        log_in(page, "/")
        page.context.set_offline(True)
        expect(page.get_by_role("alert").filter(has_text="This device is offline")).to_be_visible()
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Local DNS").click()
        expect(page.get_by_role("heading", name="Local DNS", level=1)).to_be_visible()
        failure = page.get_by_role("alert").filter(has_text="This page could not be loaded")
        expect(failure).to_contain_text("Sentinel cannot be reached")
        self.assertNotIn("dynamically imported", failure.text_content())
        page.context.set_offline(False)
        expect(page.get_by_role("alert").filter(has_text="This device is offline")).to_be_hidden()
        page.get_by_role("button", name="Try again").click()
        expect(page.get_by_role("button", name="Add rewrite")).to_be_visible()

    def test_long_names_fit_a_phone(self):
        from playwright.sync_api import expect

        long_label = "x" * 60
        pattern = ".".join([long_label] * 3) + ".example"
        name = "Living-room-" + "television" * 5  # 64 characters at most
        self.admin.post("/api/rules", {"pattern": pattern, "action": "block",
                                       "comment": "c" * 150})
        self.admin.post("/api/clients", {"name": name, "addresses": ["192.168.1.50"]})
        self.admin.post("/api/dns/rewrites", {"domain": pattern, "answer": "192.168.1.9"})
        page = self.open_page(self.daemon.base_url, width=375, height=740)
        log_in(page, "/filtering/rules")

        def fits(where):
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            self.assertLessEqual(width, 375, f"{where} is {width}px wide on a 375px screen")

        expect(page.locator("td code", has_text=pattern).first).to_be_visible()
        fits("rules")
        page.route("**/api/rules/*", answer(400, "INVALID", f"{pattern}: not accepted here."))
        page.get_by_role("button", name=f"Delete rule {pattern}").click()
        fits("the confirmation")
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_role("alert").filter(has_text="not accepted here")).to_be_visible()
        fits("a row's error")
        page.goto("/clients")
        page.get_by_role("button", name=f"Edit {name}").click()
        expect(page.get_by_role("heading", name=f"Edit client: {name}")).to_be_visible()
        fits("the client editor")
        page.goto("/local-dns")
        expect(page.locator("td code", has_text=pattern).first).to_be_visible()
        fits("local DNS")

    def test_load_older_goes_on_with_the_search_shown(self):
        from playwright.sync_api import expect

        for pattern in ("example.test", "other.test"):
            self.admin.post("/api/rules", {"pattern": pattern, "action": "block"})
        dig_many(self.daemon, [f"o{i}.other.test" for i in range(5)]
                 + [f"e{i}.example.test" for i in range(120)])
        eventually(lambda: self.assertEqual(
            len(self.admin.get("/api/query-logs?limit=500")["items"]), 125))
        page = self.open_page(self.daemon.base_url)
        log_in(page, "/query-log?domain=example.test")
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(100)
        # A new search typed, not sent yet; then "Load older" for the list shown.
        page.get_by_label("Domain contains").fill("other.test")
        page.get_by_role("button", name="Load older").click()
        expect(rows).to_have_count(120)
        self.assertEqual(rows.filter(has_text="other.test").count(), 0)
        expect(page).to_have_url(re.compile(r"/query-log\?domain=example.test$"))

    def test_row_error_outlives_the_blocklists_redraw(self):
        from playwright.sync_api import expect

        url, release = held_list_server(self, "0.0.0.0 ads.example.test\n")
        created = self.admin.post("/api/blocklists", {"name": "Held list", "url": f"{url}/ads.txt"})
        page = self.open_page(self.daemon.base_url)
        log_in(page, "/filtering")
        row = page.locator("tbody tr", has_text="Held list")
        expect(row).to_contain_text("Downloading…")  # the page redraws every 2 s meanwhile
        down = "The database cannot be reached (connection refused)."
        page.route(f"**/api/blocklists/{created['id']}", answer(503, "STORE_UNAVAILABLE", down))
        mode = row.get_by_label("Mode of Held list")
        mode.select_option("shadow")
        note = row.locator("xpath=following-sibling::tr[1]").get_by_role("alert")
        expect(note).to_have_text(down)
        expect(mode).to_have_value("enabled")

        def redrawn(response):
            return response.url.endswith("/api/blocklists") and response.request.method == "GET"

        with page.expect_response(redrawn, timeout=10000):
            pass
        with page.expect_response(redrawn, timeout=10000):
            pass  # the list is drawn again after this answer
        release.set()
        expect(row).not_to_contain_text("Downloading…")
        expect(row.locator("xpath=following-sibling::tr[1]").get_by_role("alert")).to_have_text(down)
        row.locator("xpath=following-sibling::tr[1]").get_by_role("button", name="Dismiss this error").click()
        expect(page.get_by_role("alert").filter(has_text=down)).to_have_count(0)
