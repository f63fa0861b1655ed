"""
Each page's main actions in the browser against a real daemon, checked
where the user would check them: blocklists (add by URL, download, shadow
mode, a failed refresh explained and notified), clients (kill switch,
schedule), local DNS rewrites and protection pause (all seen through dig),
DNS settings, API tokens.
"""

import http.server
import os
import shutil
import tempfile
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.support.upstream import Upstream
from tests.ui.admin import Admin, dig, require_api
from tests.ui.browser import BrowserMixin, keep_log
from tests.ui.test_cluster import log_in

ZONE = {name: {"A": ["198.18.0.10"]} for name in (
    "www.example.test", "ads.example.test", "tracker.example.test", "video.example.test")}


def serve_files(testcase, files):
    """A loopback HTTP server for blocklists; returns its base URL."""
    directory = tempfile.mkdtemp(prefix="sentinel-ui-lists-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass

    return serve_http(testcase, Handler)


def serve_http(testcase, handler):
    """Serve ``handler`` on loopback in a thread until the test ends; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    testcase.addCleanup(server.server_close)
    testcase.addCleanup(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}"


class PagesTests(BrowserMixin, SynchronousTestCase):
    def setUp(self):
        upstream = Upstream.start(self, ZONE)
        self.daemon = keep_log(self, Daemon(self, upstreams=[upstream.spec]).start(), self.id())
        require_api(self.daemon, "/api/blocklists", "/api/clients")
        Admin(self.daemon).setup()
        self.page = self.open_page(self.daemon.base_url)

    def test_blocklists_shadow_mode_failed_refresh_and_bell(self):
        from playwright.sync_api import expect

        base = serve_files(self, {"ads.txt": "# demo\n0.0.0.0 ads.example.test\n"
                                             "0.0.0.0 tracker.example.test\nnot a rule !!\n"})
        page = self.page
        log_in(page, "/filtering")
        page.get_by_label("Name").fill("Demo ads")
        page.get_by_label("URL").fill(f"{base}/ads.txt")
        page.get_by_role("button", name="Add blocklist").click()
        row = page.locator("tbody tr", has_text="Demo ads")
        expect(row.locator("td").nth(2)).to_have_text("2")  # domains, after the download
        expect(row).to_contain_text("1 lines skipped")
        self.assertEqual(dig(self.daemon, "ads.example.test")[0], "NXDOMAIN")

        # Shadow mode: logged, answered normally.
        row.get_by_label("Mode of Demo ads").select_option("shadow")
        expect(page.locator(".toast").filter(has_text="Demo ads: shadow.")).to_be_visible()
        status, answers = dig(self.daemon, "ads.example.test")
        self.assertEqual(status, "NOERROR")
        self.assertIn("198.18.0.10", "".join(answers))

        # A list that cannot be downloaded: the reason is shown, and the
        # bell announces it.
        page.get_by_label("Name").fill("Missing list")
        page.get_by_label("URL").fill(f"{base}/missing.txt")
        page.get_by_role("button", name="Add blocklist").click()
        expect(page.locator(".toast.error").filter(has_text="Refreshing failed")).to_be_visible()
        broken = page.locator("tbody tr", has_text="Missing list")
        expect(broken).to_contain_text("failed")
        expect(broken).to_contain_text("404")
        page.reload()  # the shell polls the count; a reload asks at once
        bell = page.locator("#bell")
        expect(bell.locator(".bell-count")).to_be_visible()
        bell.click()
        panel = page.get_by_role("region", name="Notifications")
        expect(panel).to_contain_text("missing.txt")
        panel.get_by_role("button", name="Mark all read").click()
        expect(bell.locator(".bell-count")).to_be_hidden()
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(bell).to_be_focused()

    def test_clients_rewrites_and_pause_seen_in_dns(self):
        from playwright.sync_api import expect

        page = self.page
        log_in(page, "/clients")
        page.get_by_role("button", name="Add client").click()
        editor = page.get_by_role("form", name="Add a client")
        editor.get_by_label("Name").fill("kids-tablet")
        editor.get_by_label("IP addresses and subnets").fill("127.0.0.3")
        editor.get_by_label("Kill switch: block everything for this client").check()
        editor.get_by_role("button", name="Add client").click()
        row = page.locator("tbody tr", has_text="kids-tablet")
        expect(row).to_contain_text("all blocked")
        self.assertEqual(dig(self.daemon, "www.example.test", source="127.0.0.3")[0], "NXDOMAIN")
        self.assertEqual(dig(self.daemon, "www.example.test", source="127.0.0.2")[0], "NOERROR")
        row.get_by_label("Block everything for kids-tablet").uncheck()
        expect(row).not_to_contain_text("all blocked")
        self.assertEqual(dig(self.daemon, "www.example.test", source="127.0.0.3")[0], "NOERROR")
        # A schedule, edited in place.
        row.get_by_role("button", name="Edit kids-tablet").click()
        editor = page.get_by_role("form", name="Edit kids-tablet")
        editor.get_by_role("button", name="Add schedule").click()
        editor.get_by_label("From").fill("21:30")
        editor.get_by_label("Until").fill("06:45")
        editor.get_by_role("button", name="Save client").click()
        expect(row).to_contain_text("21:30–06:45")

        # Local DNS.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Local DNS").click()
        page.get_by_label("Domain").fill("nas.home.test")
        page.get_by_label("Answer").fill("198.18.1.10")
        page.get_by_role("button", name="Add rewrite").click()
        expect(page.get_by_role("cell", name="nas.home.test", exact=True)).to_be_visible()
        status, answers = dig(self.daemon, "nas.home.test")
        self.assertEqual(status, "NOERROR")
        self.assertIn("198.18.1.10", "".join(answers))
        page.get_by_label("Domain").fill("bad name!")
        page.get_by_label("Answer").fill("198.18.1.10")
        page.get_by_role("button", name="Add rewrite").click()
        expect(page.get_by_role("alert").filter(has_text="bad name!")).to_be_visible()

        # Pause protection from the dashboard, then resume.
        Admin(self.daemon).login().post("/api/rules", {"pattern": "video.example.test",
                                                       "action": "block"})
        self.assertEqual(dig(self.daemon, "video.example.test")[0], "NXDOMAIN")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
        page.get_by_label("Pause for").select_option("5")
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_text("Filtering is paused until")).to_be_visible()
        self.assertEqual(dig(self.daemon, "video.example.test")[0], "NOERROR")
        page.get_by_role("button", name="Resume protection").click()
        expect(page.get_by_text("Filtering is on for every client.")).to_be_visible()
        self.assertEqual(dig(self.daemon, "video.example.test")[0], "NXDOMAIN")

    def test_dns_settings_blocking_mode_and_tokens(self):
        from playwright.sync_api import expect

        page = self.page
        log_in(page, "/settings")
        size = page.get_by_label("Cache size (answers)")
        size.fill("1234")
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator(".toast").filter(has_text="DNS settings saved")).to_be_visible()
        page.reload()
        expect(page.get_by_label("Cache size (answers)")).to_have_value("1234")
        page.get_by_label("Upstream DNS servers").fill("not an upstream at all")
        page.get_by_role("button", name="Save settings").click()
        expect(page.get_by_role("alert").filter(has_text="upstream")).to_be_visible()

        # Blocking mode: null address instead of NXDOMAIN.
        Admin(self.daemon).login().post("/api/rules", {"pattern": "ads.example.test",
                                                       "action": "block"})
        page.goto("/filtering/blocking-mode")
        page.get_by_role("combobox", name="Blocking mode").select_option("null")
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".toast").filter(has_text="Blocking mode saved")).to_be_visible()
        status, answers = dig(self.daemon, "ads.example.test")
        self.assertEqual(status, "NOERROR")
        self.assertIn("0.0.0.0", "".join(answers))

        # An API token, shown once, works as a bearer token; then revoked.
        page.goto("/account")
        page.get_by_label("Token name").fill("home-assistant")
        page.get_by_role("button", name="Create token").click()
        token = page.get_by_label("New API token").input_value()
        self.assertTrue(token)
        bearer = {"Authorization": f"Bearer {token}"}
        self.assertEqual(self.daemon.get("/api/auth/me", headers=bearer).status, 200)
        page.get_by_role("button", name="Revoke token home-assistant").click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        expect(page.get_by_text("No API tokens.")).to_be_visible()
        self.assertEqual(self.daemon.get("/api/auth/me", headers=bearer).status, 401)

    def test_status_page_says_what_is_wrong(self):
        """A bad role file (and any other problem /api/health reports) is on the
        status page in the daemon's own words."""
        from playwright.sync_api import expect

        role_file = os.path.join(self.daemon.data_dir, "sentinel", "cluster_role")
        with open(role_file, "w") as f:
            f.write("lead")  # a partial write
        page = self.page
        log_in(page, "/status")
        expect(page.get_by_text("Problem: Role file")).to_be_visible(timeout=15000)
        expect(page.get_by_text(f"role file {role_file} says 'lead'; expected exactly "
                                f"'leader' or 'follower'")).to_be_visible()
        os.unlink(role_file)
        expect(page.get_by_text("Problem: Role file")).to_have_count(0, timeout=15000)
