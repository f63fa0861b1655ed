"""
One headless Chromium per test process, driven by Playwright's sync API
(Debian's /usr/bin/chromium; never ``playwright install``).  Each test gets
its own browser context (fresh cookies) and page; uncaught page errors and
Content-Security-Policy violations fail the test.
"""

import atexit
import os
import re

CHROMIUM = os.environ.get("SENTINEL_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15000
ARTIFACTS = "ui-artifacts"  # relative: inside _trial_temp when run by trial

_state = {}


def browser():
    """The shared browser, started on first use and closed at exit."""
    if "browser" not in _state:
        if not os.path.exists(CHROMIUM):
            raise AssertionError(
                f"{CHROMIUM} is missing: install the Debian package chromium "
                f"(scripts/setup --test does).")
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        _state["playwright"] = pw
        _state["browser"] = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS)
        atexit.register(_shutdown)
    return _state["browser"]


def _shutdown():
    b = _state.pop("browser", None)
    pw = _state.pop("playwright", None)
    try:
        if b is not None:
            b.close()
    finally:
        if pw is not None:
            pw.stop()


def keep_log(testcase, daemon, name):
    """Copy the daemon's log next to the screenshots when the test ends."""

    def copy():
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, f"{name}.log"), "w") as f:
            f.write(daemon.log())

    testcase.addCleanup(copy)
    return daemon


class BrowserMixin:
    """For SynchronousTestCase: ``self.open_page(base_url)``."""

    def open_page(self, base_url, *, width=1280, height=900, name=None, check_errors=True):
        context = browser().new_context(
            base_url=base_url, viewport={"width": width, "height": height},
            locale="en-GB", timezone_id="UTC", permissions=["clipboard-read", "clipboard-write"])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text else None)
        label = name or re.sub(r"[^A-Za-z0-9_.-]+", "_", self.id())

        def finish():
            try:
                os.makedirs(ARTIFACTS, exist_ok=True)
                page.screenshot(path=os.path.join(ARTIFACTS, f"{label}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a debugging aid only
                pass
            context.close()
            if check_errors and problems:
                raise AssertionError("browser problems:\n" + "\n".join(problems))

        self.addCleanup(finish)
        page.problems = problems
        return page
