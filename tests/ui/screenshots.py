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
from tests.ui.admin import PASSWORD, USERNAME, Admin, dig, wait_started
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
    with open(os.path.join(directory, "trackers.txt"), "w") as f:
        f.write("||tracker.metrics.test^\n||beacon.telemetry.test^\n||graph.social.test^\n"
                "@@||cdn.example.test^\n##.cosmetic-banner\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cleanups.addCleanup(server.shutdown)
    return f"http://127.0.0.1:{server.server_address[1]}"


def seed_history(daemon, hours=24, seed=7):
    """
    A day of query-log history in node A's SQLite database, so the
    dashboard chart has a shape (demo traffic made now would all fall in
    the last bucket).  Rows go in with the store's own column list.
    """
    import math
    import random
    import sqlite3

    from sentinel.store.records import QUERY_LOG_COLUMNS

    rng = random.Random(seed)
    now = time.time()
    rows = []
    for step in range(hours * 6):  # every 10 minutes
        ts0 = now - hours * 3600 + step * 600
        hour = time.localtime(ts0).tm_hour
        busy = 0.25 + 0.75 * max(0.0, math.sin((hour - 6) / 24 * 2 * math.pi))
        for _ in range(int(4 + 26 * busy * rng.uniform(0.7, 1.3))):
            ip, name = rng.choice(CLIENTS)
            if rng.random() < 0.22:
                qname = rng.choice(BLOCKED)
                decision, reason, rcode, ms = "blocked", rng.choice(["blocklist:1", "rule:1"]), 3, 0.1
                upstream = ""
            else:
                qname = rng.choice(NAMES)
                cached = rng.random() < 0.55
                decision, reason, rcode = ("cached" if cached else "forwarded"), "", 0
                ms = rng.uniform(0.05, 0.3) if cached else rng.uniform(4, 40)
                upstream = "" if cached else "127.0.0.1"
            rows.append(dict(ts=ts0 + rng.uniform(0, 600), client_ip=ip, client_name=name,
                             qname=qname, qtype=rng.choice([1, 1, 1, 28]), decision=decision,
                             reason=reason, upstream=upstream, rcode=rcode,
                             duration_ms=round(ms, 3)))
    db = sqlite3.connect(os.path.join(daemon.data_dir, "sentinel.db"), timeout=10)
    with db:
        db.executemany(
            f"INSERT INTO query_log ({', '.join(QUERY_LOG_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in QUERY_LOG_COLUMNS)})",
            [tuple(r[c] for c in QUERY_LOG_COLUMNS) for r in rows])
    db.close()



def populate(a, b, vip, list_base, upstream):
    admin = Admin(a).setup()
    Admin(b).setup()
    lists = [
        admin.post("/api/blocklists", {"name": "Ads and trackers (demo)", "url": f"{list_base}/ads.txt"}),
        admin.post("/api/blocklists", {"name": "Trackers — shadow test", "url": f"{list_base}/trackers.txt",
                                       "mode": "shadow"}),
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

    for round_ in range(2):
        for i, (source, _) in enumerate(CLIENTS):
            for name in NAMES[: 3 + (i + round_) % 4]:
                dig(a, name, source=source)
            for name in BLOCKED[: 1 + (i + round_) % 4]:
                dig(a, name, source=source)
        dig(a, "nas.home.test", source="127.0.0.2")
        dig(a, "printer.home.test", source="127.0.0.3")

    admin.request("PUT", "/api/cluster/ha/config", {
        "enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120,
        "password": "s3cret", "mode": "multicast"}, expect=200)
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
                    if name == "cluster":
                        load = page.get_by_role("button", name="Load Join Code")
                        try:
                            load.click(timeout=10000)
                        except Exception as e:  # noqa: BLE001 - say why, shoot anyway
                            print(f"warning: Load Join Code not clicked ({e}) on {page.url}:"
                                  f" {page.locator('body').inner_text()[:800]!r}", file=sys.stderr)
                        page.evaluate("window.scrollTo(0, 0)")
                    page.wait_for_timeout(400)
                    suffix = "" if width > 600 else "-phone"
                    file = os.path.join(target, f"{name}{suffix}.png")
                    page.screenshot(path=file, full_page=full or width < 600)
                    print("wrote", os.path.relpath(file, REPO))
                context.close()
        finally:
            browser.close()


def shoot_follower(base_url, out):
    """Node B, the follower: the Cluster / HA page with the read-only
    banner, and DNS settings after trying a change (the node's 409)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="en-GB",
                                    timezone_id="UTC", color_scheme="light")
            page.goto(base_url + "/login")
            page.get_by_label("Username").fill(USERNAME)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(lambda u: "/login" not in u)
            page.goto(base_url + "/cluster")
            page.wait_for_load_state("networkidle")
            page.locator("#readonly-banner").wait_for()
            page.wait_for_timeout(400)
            page.screenshot(path=os.path.join(out, "follower-cluster.png"))
            print("wrote docs/screenshots/follower-cluster.png")
            page.goto(base_url + "/settings")
            page.get_by_label("Serve stale answers").click(force=True)
            page.get_by_role("button", name="Save settings").click(force=True)
            alert = page.get_by_role("alert").filter(has_text="This node is a follower")
            alert.wait_for()
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_timeout(400)
            page.screenshot(path=os.path.join(out, "follower-refused.png"))
            print("wrote docs/screenshots/follower-refused.png")
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
    parser.add_argument("--only", nargs="*",
                        help="page names to shoot (default: all; 'follower' for node B's)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    from tests.support.upstream import Upstream

    cleanups = Cleanups()
    try:
        zone = {name: {"A": ["198.18.0.10"]} for name in NAMES + BLOCKED}
        zone.update({f"x.{n}": {"A": ["198.18.0.11"]} for n in NAMES})
        upstream = Upstream.start(cleanups, zone)
        list_base = serve_blocklist(cleanups)
        a = wait_started(Daemon(cleanups, upstreams=[upstream.spec]).start())
        b = wait_started(Daemon(cleanups, upstreams=[upstream.spec]).start())
        shoot_public(b.base_url, args.out)
        vip = Vip(cleanups, a.http_port)
        seed_history(a)
        populate(a, b, vip, list_base, upstream)
        time.sleep(1.5)  # the follower's first sync, the query-log flush
        shoot(vip.url, args.out, args.out, args.only)
        if not args.only or "follower" in args.only:
            shoot_follower(b.base_url, args.out)
    finally:
        cleanups.run()


if __name__ == "__main__":
    main()
