"""
Every JavaScript module of the UI loads in a real browser from the real
daemon: no syntax errors, no missing imports, no CSP violations.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from sentinel.web.resource import STATIC_DIR
from tests.support.daemon import Daemon
from tests.ui.browser import BrowserMixin


def module_urls():
    urls = []
    for dirpath, _, names in os.walk(STATIC_DIR):
        for name in sorted(names):
            if name.endswith(".js"):
                rel = os.path.relpath(os.path.join(dirpath, name), STATIC_DIR)
                urls.append("/" + rel.replace(os.sep, "/"))
    return sorted(urls)


class ModulesTests(BrowserMixin, SynchronousTestCase):
    def test_every_module_loads(self):
        daemon = Daemon(self).start()
        page = self.open_page(daemon.base_url)
        page.goto("/")
        urls = module_urls()
        self.assertGreater(len(urls), 10)
        failures = page.evaluate(
            """async (urls) => {
                const out = [];
                for (const u of urls) {
                    try { await import(u); } catch (e) { out.push(u + ": " + e); }
                }
                return out;
            }""", urls)
        self.assertEqual(failures, [])
        self.assertEqual(page.problems, [])
