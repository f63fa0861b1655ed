"""
What a first-time user trips over with their own input, in the browser
against one real daemon: a refused value is explained under the field it
belongs to (also for one line of a list field, such as a client's
addresses) and that field gets the focus; a blocklist download the server
runs by itself is shown as running and followed to its end; names typed
by users (or sent as DNS queries) are shown as text, never as markup.


A page that cannot load (503 while the database is down) keeps its heading,
says why and offers to try again.
"""

import http.server
import json
import subprocess
import tempfile
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.support.upstream import Upstream
from tests.ui.admin import Admin, dig, require_api
from tests.ui.browser import BrowserMixin, keep_log
from tests.ui.test_cluster import log_in
from tests.ui.test_flows import eventually
from tests.ui.test_pages import serve_http

MARKUP = "<img src=x onerror=alert(1)>"


def held_list_server(testcase, text):
    """A loopback blocklist server whose answers wait for ``release.set()``."""
    release = threading.Event()
    body = text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    url = serve_http(testcase, Handler)
    testcase.addCleanup(release.set)  # runs first: the held requests end
    return url, release


def dig_many(daemon, names):
    """Query each name once (one dig process for all)."""
    with tempfile.NamedTemporaryFile("w", suffix=".names") as f:
        f.write("\n".join(names) + "\n")
        f.flush()
        subprocess.run(["dig", "+tries=1", "+time=2", "-p", str(daemon.dns_port),
                        f"@{daemon.host}", "-f", f.name], capture_output=True, timeout=120)


class UserInputTests(BrowserMixin, SynchronousTestCase):
    def test_errors_under_fields_server_downloads_and_names_as_text(self):
        from playwright.sync_api import expect

        upstream = Upstream.start(self, {"www.example.test": {"A": ["198.18.0.10"]}})
        daemon = keep_log(self, Daemon(self, upstreams=[upstream.spec]).start(), "userdata")
        require_api(daemon, "/api/blocklists", "/api/clients", "/api/query-logs")
        admin = Admin(daemon).setup()
        page = self.open_page(daemon.base_url)
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # A client's bad address (the API names "addresses.0"): the reason
        # is under the addresses box, which is marked and focused.
        log_in(page, "/clients")
        page.get_by_role("button", name="Add client").click()
        form = page.get_by_role("form", name="Add a client")
        form.get_by_label("Name", exact=True).fill("Kids' tablet")
        addresses = form.get_by_label("IP addresses and subnets")
        addresses.fill("300.1.1.1")
        form.get_by_label("Name", exact=True).press("Enter")
        expect(addresses).to_have_attribute("aria-invalid", "true")
        expect(addresses).to_have_accessible_description(
            "One per line. The most specific match wins: an address beats a subnet, a "
            "smaller subnet beats a larger one. '300.1.1.1' is not an IP address or CIDR "
            "network ('300.1.1.1' does not appear to be an IPv4 or IPv6 address)")
        expect(addresses).to_be_focused()
        expect(form.get_by_role("alert")).to_have_text(
            "IP addresses and subnets: '300.1.1.1' is not an IP address or CIDR network "
            "('300.1.1.1' does not appear to be an IPv4 or IPv6 address)")
        # Fixed and sent again: the note and the mark go.
        addresses.fill("198.18.0.77")
        form.get_by_role("button", name="Add client").click()
        expect(page.get_by_role("cell", name="Kids' tablet", exact=True)).to_be_visible()
        expect(page.locator(".field-error")).to_have_count(0)
        # Deleted by keyboard: the focus stays in the list (the row and its
        # button are gone), so Tab goes on there, not from the top.
        page.get_by_role("button", name="Delete Kids' tablet").focus()
        page.keyboard.press("Enter")
        page.get_by_role("dialog").get_by_role("button", name="Delete").press("Enter")
        expect(page.get_by_text("No clients yet.")).to_be_visible()
        clients = page.get_by_role("region", name="Clients and subnets")
        self.assertTrue(clients.evaluate("(el) => el.contains(document.activeElement)"))

        # A mistyped current password (the API names no field): marked
        # and focused, so it can be typed again at once.
        page.get_by_role("link", name="Account").click()
        current = page.get_by_label("Current password")
        current.fill("not my password")
        page.get_by_label("New password", exact=True).fill("a new good password")
        page.get_by_label("Repeat new password").fill("a new good password")
        page.get_by_label("Repeat new password").press("Enter")
        expect(current).to_have_attribute("aria-invalid", "true")
        expect(current).to_have_accessible_description("The current password is wrong.")
        expect(current).to_be_focused()

        # A blocklist URL that is not http(s): explained under URL.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Filtering").click()
        url = page.get_by_label("URL")
        page.get_by_label("Name", exact=True).fill("Ads")
        url.fill("ftp://lists.example.test/ads.txt")
        url.press("Enter")
        expect(url).to_have_accessible_description(
            "Hosts files, plain domain lists and Adblock-style ||domain^ lists. "
            "url must be an http:// or https:// address")
        expect(url).to_be_focused()

        # A list whose download the server started by itself (added
        # elsewhere, e.g. by the API): shown as downloading, then its
        # result appears without reloading the page.
        base, release = held_list_server(self, "0.0.0.0 ads.example.test\n")
        admin.post("/api/blocklists", {"name": MARKUP, "url": f"{base}/ads.txt"})
        page.reload()
        row = page.locator("tbody tr", has_text=MARKUP)
        expect(row).to_contain_text("Downloading…")
        expect(row.get_by_role("button", name=f"Refresh {MARKUP}")).to_be_disabled()
        release.set()
        expect(row.locator("td").nth(2)).to_have_text("1")
        expect(row).to_contain_text("changed just now")
        expect(row.get_by_role("button", name=f"Refresh {MARKUP}")).to_be_enabled()
        # On a phone the row is a block of lines: its status and its
        # buttons are on the screen, not in a part of the table off to the right.
        page.set_viewport_size({"width": 390, "height": 844})
        for part in (row.get_by_text("changed just now"),
                     row.get_by_role("button", name=f"Delete {MARKUP}")):
            box = part.bounding_box()
            self.assertLessEqual(box["x"] + box["width"], 390, part)
        page.set_viewport_size({"width": 1280, "height": 900})

        # User data is text everywhere: a list, a client and a query name.
        admin.post("/api/clients", {"name": MARKUP, "addresses": ["127.0.0.1"],
                                    "comment": "<script>alert(2)</script>"})
        dig(daemon, "<img\\032src=x\\032onerror=alert(1)>.example.test")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Clients").click()
        expect(page.locator("tbody tr", has_text=MARKUP)).to_contain_text("<script>alert(2)</script>")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Query log").click()
        query = page.locator("tbody tr", has_text="onerror=alert(1)>.example.test").first
        expect(query).to_contain_text("<img\\032src=x\\032onerror=alert(1)>.example.test")
        expect(query).to_contain_text(MARKUP)  # the client's name
        expect(page.locator("main img")).to_have_count(0)
        self.assertEqual(dialogs, [])

        # Names Sentinel answers itself (localhost, docs/DNS.md) can be found.
        dig(daemon, "localhost")
        page.get_by_label("Decision").select_option("Answered by Sentinel itself")

        def found():
            page.get_by_role("button", name="Search").click()
            expect(page.locator("tbody tr", has_text="localhost")).to_have_count(1, timeout=1000)

        eventually(found)
        page.get_by_role("button", name="Clear").click()

        # Many rows, by keyboard: "Load older" keeps the focus (it is
        # disabled while loading), so the next Tab goes on from there.
        dig_many(daemon, [f"q{i}.example.test" for i in range(220)])
        eventually(lambda: self.assertEqual(
            len(admin.get("/api/query-logs?limit=500")["items"]), 222))
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator("tbody tr")).to_have_count(100)
        older = page.get_by_role("button", name="Load older")
        older.focus()
        page.keyboard.press("Enter")
        expect(page.locator("tbody tr")).to_have_count(200)
        expect(older).to_be_focused()

        # One-click Block on a row far down the log, for a name no rule can
        # hold: the refusal is shown where the user is looking, not above the table.
        page.keyboard.press("Enter")
        expect(page.locator("tbody tr")).to_have_count(222)
        odd = page.locator("tbody tr", has_text="onerror=alert(1)>.example.test")
        odd.get_by_role("button", name="Block").click()
        expect(page.get_by_text("is not a valid domain name").first).to_be_in_viewport()

    def test_database_down_page_says_why_try_again_and_status(self):
        from playwright.sync_api import expect

        daemon = keep_log(self, Daemon(self).start(), "unavailable")
        require_api(daemon, "/api/dns/settings")
        Admin(daemon).setup()
        page = self.open_page(daemon.base_url)
        log_in(page, "/")
        outage = {"on": True}
        message = ("The database cannot be reached (connection refused); "
                   "DNS keeps answering with the policy it has.")

        def store_down(route):
            if not outage["on"]:
                return route.continue_()
            return route.fulfill(status=503, headers={"Retry-After": "5"},
                                 content_type="application/json",
                                 body=json.dumps({"error": "STORE_UNAVAILABLE", "message": message}))

        page.route("**/api/dns/settings", store_down)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="DNS settings").click()
        expect(page.get_by_role("heading", name="DNS settings", level=1)).to_be_visible()
        expect(page.get_by_role("alert")).to_have_text(message)
        outage["on"] = False
        page.get_by_role("button", name="Try again").click()
        expect(page.get_by_role("button", name="Save settings")).to_be_visible()
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        expect(page.get_by_role("button", name="Try again")).to_have_count(0)

        # The Status page while the database is down: health and readiness
        # answer 503 with their usual bodies (docs/STORAGE.md, CLUSTER.md),
        # read as "degraded" / "not ready" with the reason, and each problem
        # (the last-known-good policy DNS uses meanwhile) as a box of its own.
        policy = ("DNS filters with the last-known-good policy from 2026-11-27 23:10 UTC "
                  "(revision 41), not the configuration in the store, until the store opens")
        health = {"ok": False, "store": "unavailable", "checks": {"dns": True, "store": False},
                  "error": "UNHEALTHY", "message": "Not healthy.",
                  "problems": {"store": "the database connection was lost (connection refused)",
                               "policy": policy}}
        ready = {"ok": False, "role": "standalone", "reason": "the database is unavailable",
                 "error": "NOT_READY", "message": "Not ready: the database is unavailable."}
        def answer_503(body):
            return lambda route: route.fulfill(status=503, content_type="application/json",
                                               body=json.dumps(body))

        page.route("**/api/health", answer_503(health))
        page.route("**/api/cluster/ready", answer_503(ready))
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Status").click()
        node = page.get_by_role("region", name="This node")
        expect(node.locator("dt:text-is('Health') + dd")).to_have_text("degraded")
        expect(node.locator("dt:text-is('Ready (for keepalived)') + dd")).to_have_text(
            "not ready the database is unavailable")
        problem = node.locator(".problem", has_text=policy)
        expect(problem).to_have_css("display", "block")
