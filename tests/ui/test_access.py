"""
Every page, on a real daemon, is usable on a phone (nothing wider than the
screen), by keyboard (skip link, visible focus, buttons not divs), and
with a screen reader (every form control has a label).
"""

from twisted.trial.unittest import SynchronousTestCase

from tests.support.daemon import Daemon
from tests.ui.admin import Admin, require_api
from tests.ui.browser import BrowserMixin
from tests.ui.test_cluster import log_in

PAGES = ["/", "/query-log", "/filtering", "/filtering/rules", "/filtering/blocking-mode",
         "/clients", "/local-dns", "/settings", "/cluster", "/status", "/account"]

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                  && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))"""

CLICKABLE_NON_BUTTONS = """() => [...document.querySelectorAll('div, span, li, td')]
  .filter((el) => el.onclick || el.getAttribute('onclick')).map((el) => el.outerHTML.slice(0, 120))"""


class AccessTests(BrowserMixin, SynchronousTestCase):
    def setUp(self):
        self.daemon = Daemon(self).start()
        require_api(self.daemon, "/api/rules")
        Admin(self.daemon).setup()

    def test_phone_screen_every_page_fits_and_is_labelled(self):
        from playwright.sync_api import expect

        page = self.open_page(self.daemon.base_url, width=390, height=844)
        log_in(page)
        for path in PAGES:
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            page.wait_for_load_state("networkidle")
            width = page.evaluate("document.documentElement.scrollWidth")
            self.assertLessEqual(width, 390, f"{path} is {width}px wide on a 390px screen")
            self.assertEqual(page.evaluate(UNLABELLED), [], f"unlabelled controls on {path}")
            self.assertEqual(page.evaluate(CLICKABLE_NON_BUTTONS), [], path)
        self.assertEqual(page.problems, [])

    def test_keyboard_skip_link_focus_and_navigation(self):
        from playwright.sync_api import expect

        page = self.open_page(self.daemon.base_url)
        log_in(page)
        page.goto("/local-dns")
        expect(page.get_by_role("heading", name="Local DNS", level=1)).to_be_visible()
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        self.assertNotEqual(skip.evaluate("el => getComputedStyle(el).outlineStyle"), "none")
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()
        # Tab reaches the first form field; typing and Enter submits the form.
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.name")
        self.assertEqual(focused, "domain")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        self.assertNotEqual(outline, "none")
        page.keyboard.type("nas.home.test")
        page.keyboard.press("Tab")
        page.keyboard.type("198.18.1.10")
        page.keyboard.press("Enter")
        expect(page.get_by_role("cell", name="nas.home.test", exact=True)).to_be_visible()
        # Main navigation by keyboard: focus a nav link and follow it.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Clients").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Clients", level=1)).to_be_focused()
