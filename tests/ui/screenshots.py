"""
Regenerate docs/screenshots/*.png (run by ``scripts/screenshots``).

Starts, on free loopback ports: a local upstream DNS server, a local HTTP
server with a blocklist, two throwaway daemons (node A the leader, node B
a follower, with a forwarder standing in for the VIP); fills them with
demo data through the API and real DNS queries from several loopback
source addresses; then photographs every page with headless Chromium,
on a desktop and a phone screen.  Nothing leaves the machine.
"""

import argparse
import http.server
import os
import shutil
import sys
import tempfile
import threading
import time

from tests.support.daemon import Daemon
from tests.ui.admin import PASSWORD, USERNAME, Admin, dig
from tests.ui.browser import ARGS, CHROMIUM
from tests.ui.vip import Vip

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "docs", "screenshots")

PAGES = [  # (file name, path, full page)
    ("dashboard", "/", False),
    ("query-log", "/query-log", False),
    ("filtering-blocklists", "/filtering", False),
    ("filtering-rules", "/filtering/rules", False),
    ("filtering-blocking-mode", "/filtering/blocking-mode", False),
    ("clients", "/clients", False),
    ("local-dns", "/local-dns", False),
    ("dns-settings", "/settings", True),
    ("cluster", "/cluster", True),
    ("status", "/status", False),
    ("account", "/account", False),
]
PHONE_PAGES = ["dashboard", "query-log", "cluster"]

BLOCKLIST = "\n".join(
    ["# demo list"] + [f"0.0.0.0 {d}" for d in (
        "ads.doubleclick.test", "tracker.metrics.test", "pixel.adnet.test", "beacon.telemetry.test",
        "banner.ads.test", "stats.spyware.test")] + [f"0.0.0.0 ad{i}.adfarm.test" for i in range(200)]
) + "\n"

CLIENTS = [  # (source address, name)
    ("127.0.0.2", "laptop"), ("127.0.0.3", "kids-tablet"), ("127.0.0.4", "living-room-tv"),
    ("127.0.0.5", "phone"),
]
NAMES = ["www.example.test", "mail.example.test", "api.example.test", "news.example.test",
         "video.example.test", "shop.example.test"]
BLOCKED = ["ads.doubleclick.test", "tracker.metrics.test", "pixel.adnet.test",
           "beacon.telemetry.test", "graph.social.test"]


class Cleanups:
    """What tests.support.daemon expects of a test case."""

    def __init__(self):
        self._fns = []

    def addCleanup(self, fn, *args):
        self._fns.append((fn, args))

    def run(self):
        while self._fns:
            fn, args = self._fns.pop()
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - best-effort teardown
                print(f"cleanup: {e}", file=sys.stderr)


def serve_blocklist(cleanups):
    directory = tempfile.mkdtemp(prefix="sentinel-shots-")
    cleanups.addCleanup(shutil.rmtree, directory, True)
    with open(os.path.join(directory, "ads.txt"), "w") as f:
        f.write(BLOCKLIST)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanups.addCleanup(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}"


def items(data, key):
    return data[key] if isinstance(data, dict) else data


def populate(a, b, vip, list_base, upstream):
    admin = Admin(a).setup()
    Admin(b).setup()
    lists = [
        admin.post("/api/blocklists", {"name": "Ads and trackers (demo)", "url": f"{list_base}/ads.txt"}),
        admin.post("/api/blocklists", {"name": "Trackers — shadow test", "url": f"{list_base}/ads.txt",
                                       "mode": "shadow", "global": False}),
    ]
    for bl in lists:
        admin.post(f"/api/blocklists/{bl['id']}/refresh")
    admin.post("/api/blocklists", {"name": "Unreachable list", "url": "http://127.0.0.1:9/list.txt",
                                   "mode": "disabled"})
    clients = {}
    for source, name in CLIENTS:
        clients[name] = admin.post("/api/clients", {"name": name, "addresses": [source]})
    admin.post("/api/clients", {
        "name": "IoT subnet", "addresses": ["127.0.1.0/24"], "comment": "cameras and plugs",
        "use_global_blocklists": False, "blocklists": [lists[0]["id"]]})
    admin.request("PATCH", f"/api/clients/{clients['kids-tablet']['id']}", {
        "schedules": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "21:00",
                       "end": "07:00", "block": "all"}]}, expect=200)
    admin.post("/api/rules", {"pattern": "graph.social.test", "action": "block"})
    admin.post("/api/rules", {"pattern": "*.video.example.test", "action": "block",
                              "client_id": clients["kids-tablet"]["id"], "comment": "homework time"})
    admin.post("/api/rules", {"pattern": "|cdn.example.test|", "action": "allow",
                              "comment": "needed by the school portal"})
    admin.post("/api/dns/rewrites", {"domain": "nas.home.test", "answer": "198.18.1.10", "comment": "the NAS"})
    admin.post("/api/dns/rewrites", {"domain": "*.lab.home.test", "answer": "198.18.1.40"})
    admin.post("/api/dns/rewrites", {"domain": "printer.home.test", "answer": "www.example.test", "ttl": 60})
    time.sleep(1.0)  # blocklist downloads

    for round_ in range(3):
        for i, (source, _) in enumerate(CLIENTS):
            for name in NAMES[: 3 + (i + round_) % 4]:
                dig(a, name, source=source)
            for name in BLOCKED[: 1 + (i + round_) % 4]:
                dig(a, name, source=source)
        dig(a, "nas.home.test", source="127.0.0.2")
        dig(a, "printer.home.test", source="127.0.0.3")

    admin.post("/api/cluster/enable-leader", {"leaderUrl": vip.url})
    code = admin.get("/api/cluster/join-code")["joinCode"]
    Admin(b).login().post("/api/cluster/configure-follower", {"joinCode": code})
    return admin


def shoot(base_url, out, phone_out=None, only=None):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for width, height, names, target in ((1280, 860, None, out), (390, 844, PHONE_PAGES, phone_out)):
                if target is None:
                    continue
                context = browser.new_context(
                    viewport={"width": width, "height": height}, locale="en-GB",
                    timezone_id="UTC", color_scheme="light", device_scale_factor=1)
                page = context.new_page()
                page.goto(base_url + "/login")
                page.get_by_label("Username").fill(USERNAME)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_url(lambda u: "/login" not in u)
                for name, path, full in PAGES:
                    if (names and name not in names) or (only and name not in only):
                        continue
                    page.goto(base_url + path)
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(400)
                    suffix = "" if width > 600 else "-phone"
                    file = os.path.join(target, f"{name}{suffix}.png")
                    page.screenshot(path=file, full_page=full or width < 600)
                    print("wrote", os.path.relpath(file, REPO))
                context.close()
        finally:
            browser.close()


def shoot_public(base_url, out):
    """The first-run and login pages (before the admin exists)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(base_url + "/")
            page.wait_for_url(lambda u: u.endswith("/setup"))
            page.screenshot(path=os.path.join(out, "setup.png"))
            print("wrote docs/screenshots/setup.png")
        finally:
            browser.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--only", nargs="*", help="page names to shoot (default: all)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    from tests.support.upstream import Upstream

    cleanups = Cleanups()
    try:
        zone = {name: {"A": ["198.18.0.10"]} for name in NAMES + BLOCKED}
        zone.update({f"x.{n}": {"A": ["198.18.0.11"]} for n in NAMES})
        upstream = Upstream.start(cleanups, zone)
        list_base = serve_blocklist(cleanups)
        a = Daemon(cleanups, upstreams=[upstream.spec]).start()
        b = Daemon(cleanups, upstreams=[upstream.spec]).start()
        shoot_public(b.base_url, args.out)
        vip = Vip(cleanups, a.http_port)
        populate(a, b, vip, list_base, upstream)
        time.sleep(1.5)  # the follower's first sync, the query-log flush
        shoot(vip.url, args.out, args.out, args.only)
    finally:
        cleanups.run()


if __name__ == "__main__":
    main()
