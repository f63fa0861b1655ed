"""
The web UI resource as the daemon's HTTP site serves it: index.html for
UI routes, assets with the right types, strict security headers, no path
escapes, and API paths never answered with HTML.
"""

import os
import re

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from sentinel.api.site import Gate, Site
from sentinel.web import WebUI
from sentinel.web.resource import STATIC_DIR

BASE = "http://sentinel.test"


class ResourceTests(SynchronousTestCase):
    def setUp(self):
        self.stub = StubTreq(Site([], Gate(), fallback=WebUI()).resource())

    def request(self, method, path, headers=None):
        d = self.stub.request(method, BASE + path, headers=headers)
        self.stub.flush()
        response = self.successResultOf(d)
        d = response.content()
        self.stub.flush()
        return response, self.successResultOf(d)

    def header(self, response, name):
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    def test_root_is_the_app_with_strict_headers(self):
        r, body = self.request("GET", "/")
        self.assertEqual(r.code, 200)
        self.assertEqual(self.header(r, "content-type"), "text/html; charset=utf-8")
        self.assertIn(b'<script type="module" src="/js/app.js">', body)
        csp = self.header(r, "content-security-policy")
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertIn("style-src 'self'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertNotIn("unsafe", csp)
        self.assertEqual(self.header(r, "x-frame-options"), "DENY")
        self.assertEqual(self.header(r, "x-content-type-options"), "nosniff")
        self.assertEqual(self.header(r, "referrer-policy"), "no-referrer")

    def test_ui_routes_get_the_app(self):
        _, index = self.request("GET", "/")
        for path in ("/cluster", "/filtering/rules", "/query-log?domain=x", "/login/",
                     "/no-such-page"):
            r, body = self.request("GET", path)
            self.assertEqual(r.code, 200, path)
            self.assertEqual(body, index, path)

    def test_assets_have_their_types(self):
        for path, ctype in [("/js/app.js", "text/javascript; charset=utf-8"),
                            ("/js/pages/login.js", "text/javascript; charset=utf-8"),
                            ("/app.css", "text/css; charset=utf-8"),
                            ("/favicon.svg", "image/svg+xml")]:
            r, body = self.request("GET", path)
            self.assertEqual(r.code, 200, path)
            self.assertEqual(self.header(r, "content-type"), ctype, path)
            self.assertTrue(body)
            self.assertIsNotNone(self.header(r, "content-security-policy"))

    def test_missing_file_is_404_not_the_app(self):
        for path in ("/js/nope.js", "/nope.css", "/js/pages/x.js"):
            r, body = self.request("GET", path)
            self.assertEqual(r.code, 404, path)
            self.assertEqual(self.header(r, "content-type"), "text/plain; charset=utf-8")
            self.assertNotIn(b"<html", body)

    def test_no_path_escapes_or_hidden_files(self):
        secret = os.path.join(os.path.dirname(STATIC_DIR), "resource.py")
        self.assertTrue(os.path.exists(secret))
        for path in ("/../resource.py", "/%2e%2e/resource.py", "/js/%2e%2e/%2e%2e/resource.py",
                     "/js/..%2f..%2fresource.py", "/.hidden.txt", "/js/%00.js",
                     "/%ff.js"):
            r, body = self.request("GET", path)
            self.assertIn(r.code, (404, 400), path)
            self.assertNotIn(b"import", body, path)

    def test_etag_revalidation(self):
        r, _ = self.request("GET", "/js/app.js")
        etag = self.header(r, "etag")
        self.assertTrue(etag)
        self.assertEqual(self.header(r, "cache-control"), "no-cache")
        r, body = self.request("GET", "/js/app.js", headers={"If-None-Match": etag})
        self.assertEqual(r.code, 304)
        self.assertEqual(body, b"")
        r, _ = self.request("GET", "/js/app.js", headers={"If-None-Match": '"other"'})
        self.assertEqual(r.code, 200)

    def test_head_and_other_methods(self):
        _, index = self.request("GET", "/")
        r, body = self.request("HEAD", "/")
        self.assertEqual(r.code, 200)
        self.assertEqual(body, b"")
        self.assertEqual(self.header(r, "content-length"), str(len(index)))
        r, _ = self.request("POST", "/cluster")
        self.assertEqual(r.code, 405)
        self.assertEqual(self.header(r, "allow"), "GET, HEAD")

    def test_api_paths_are_never_the_app(self):
        for path in ("/api/no-such-thing", "/api", "/metrics/x"):
            r, body = self.request("GET", path)
            self.assertEqual(r.code, 404, path)
            self.assertEqual(self.header(r, "content-type"), "application/json; charset=utf-8")
            self.assertIn(b'"NOT_FOUND"', body)


def static_files():
    for dirpath, _, names in os.walk(STATIC_DIR):
        for name in names:
            yield os.path.relpath(os.path.join(dirpath, name), STATIC_DIR)


def read(rel):
    with open(os.path.join(STATIC_DIR, rel), encoding="utf-8") as f:
        return f.read()


class AssetTests(SynchronousTestCase):
    """Static checks that would otherwise only show up in a browser."""

    def test_every_import_resolves(self):
        modules = [f for f in static_files() if f.endswith(".js")]
        self.assertIn("js/app.js", modules)
        for rel in modules:
            text = read(rel)
            # static imports, and relative module paths used by dynamic import()
            for target in re.findall(r'"(\.{1,2}/[^"]+\.js)"', text):
                path = os.path.normpath(os.path.join(os.path.dirname(rel), target))
                self.assertIn(path, modules, f"{rel} imports missing {target}")

    def test_every_route_has_its_page_module(self):
        text = read("js/app.js")
        names = re.findall(r'module:\s*"([a-z-]+)"', text)
        self.assertIn("login", names)
        self.assertIn("cluster", names)
        for name in names + ["notfound"]:
            self.assertTrue(os.path.isfile(os.path.join(STATIC_DIR, "js", "pages", name + ".js")),
                            f"route module {name} has no file")

    def test_no_inline_code_and_no_innerhtml(self):
        """CSP compliance (no inline script/style/handlers) and no HTML injection sinks."""
        index = read("index.html")
        for tag in re.findall(r"<script\b[^>]*>", index):
            self.assertIn("src=", tag)
        self.assertNotRegex(index, r"\sstyle=|\son[a-z]+=")
        for rel in static_files():
            if rel.endswith(".js"):
                text = read(rel)
                for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                             "eval(", "new Function"):
                    self.assertNotIn(sink, text, f"{rel} uses {sink}")

    def test_package_data_covers_every_asset(self):
        setup_cfg = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "setup.cfg")
        with open(setup_cfg) as f:
            patterns = re.findall(r"^\s+(web/static/\S+)$", f.read(), re.M)
        depths = {p.count("/") - 1 for p in patterns}
        for rel in static_files():
            self.assertIn(rel.count("/") + 1, depths, f"{rel} is not package data")
