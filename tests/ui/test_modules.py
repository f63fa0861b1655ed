"""
Every JavaScript module of the UI loads in a real browser from the real
daemon: no syntax errors, no missing imports, no CSP violations.
"""

import os
import re

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


class LogicTests(BrowserMixin, SynchronousTestCase):
    """The pure helpers, run in the browser as the UI runs them."""

    def setUp(self):
        self.daemon = Daemon(self).start()
        self.page = self.open_page(self.daemon.base_url)
        self.page.goto("/js/api.js")  # same origin, nothing running

    def run_js(self, module, body, arg=None):
        return self.page.evaluate(
            f"""async (arg) => {{ const m = await import("{module}"); {body} }}""", arg)

    def test_login_goes_on_only_inside_the_ui(self):
        cases = ["/query-log?domain=x", "/", "", None, "//evil.test/", "/\\evil.test/",
                 "/\\/evil.test", "https://evil.test/", "javascript:alert(1)", "/%2F%2Fx"]
        got = self.run_js("/js/pages/login.js", "return arg.map((n) => m.safeNext(n));", cases)
        self.assertEqual(got, ["/query-log?domain=x", "/", "/", "/", "/", "/", "/", "/", "/",
                               "/%2F%2Fx"])

    def test_chart_scale_has_whole_grid_labels(self):
        tops = self.run_js("/js/chart.js", "return arg.map((v) => m.niceMax(v));",
                           [0, 1, 3, 5, 7, 11, 21, 26, 160, 240, 2600])
        self.assertEqual(tops, [4, 4, 4, 10, 10, 20, 50, 50, 200, 250, 5000])
        self.assertTrue(all(t % 2 == 0 for t in tops))

    def test_status_component_values_read_as_words_and_dates(self):
        got = self.run_js("/js/pages/status.js",
                          "return arg.map(([k, v]) => m.componentValue(k, v));",
                          [["last_known_good_saved", 1795828558.82], ["paused_until", None],
                           ["paused", False], ["next_change", "2026-11-28T07:00:00Z"],
                           ["blocked_domains", 1234567], ["time_zone", "Etc/UTC"],
                           ["last_known_good_saved_revision", 36]])
        self.assertEqual(got, ["28/11/2026, 01:15:58", "–", "no", "28/11/2026, 07:00:00",
                               "1,234,567", "Etc/UTC", "36"])

    def test_routes(self):
        routes = [{"path": "/"}, {"path": "/filtering"}, {"path": "/clients"}, {"path": "/cluster"}]
        cases = self.run_js("/js/router.js", """
            const r = (p) => { const m2 = m.matchRoute(arg, p); return m2 ? [m2.route.path, m2.rest] : null; };
            return [r("/"), r("/filtering/rules"), r("/clients/"), r("/nope"), r("/cluster/x/y"), r("/filteringx")];
        """, routes)
        self.assertEqual(cases, [["/", []], ["/filtering", ["rules"]], ["/clients", []], None,
                                 ["/cluster", ["x", "y"]], None])

    def test_leader_url_warning(self):
        out = self.run_js("/js/cluster/leader.js", """return [
            m.vipWarning("http://192.168.1.53:8080", "192.168.1.53/24"),
            m.vipWarning("http://192.168.1.11:8080", "192.168.1.53/24"),
            m.vipWarning("http://192.168.1.11:8080", null),
            m.suggestedLeaderUrl("192.168.1.53/24"),
            m.suggestedLeaderUrl(null),
        ];""")
        self.assertIsNone(out[0])
        self.assertIn("not the VIP URL", out[1])
        self.assertIn("No VIP is configured", out[2])
        port = self.daemon.http_port
        self.assertEqual(out[3], f"http://192.168.1.53:{port}")
        self.assertEqual(out[4], self.daemon.base_url)

    def test_cluster_view_of_a_follower(self):
        status = {"configuredRole": "follower", "effectiveRole": "leader", "roleOverride": "leader",
                  "readOnly": True, "failover": True, "leaderUrl": "http://198.18.0.53:8080",
                  "sync": {"lastSync": "2026-01-02T03:04:05.000Z",
                           "lastError": {"code": "LEADER_UNREACHABLE", "message": "x", "at": None}}}
        view = self.run_js("/js/session.js",
                           "const v = m.clusterView(arg); delete v.raw; return v;", status)
        self.assertEqual(view["configuredRole"], "follower")
        self.assertEqual(view["effectiveRole"], "leader")
        self.assertTrue(view["readOnly"])
        self.assertTrue(view["failover"])
        self.assertEqual(view["lastSync"], "2026-01-02T03:04:05.000Z")
        self.assertEqual(view["lastError"]["code"], "LEADER_UNREACHABLE")
        standalone = self.run_js("/js/session.js", "return m.clusterView({}).readOnly;")
        self.assertFalse(standalone)

    def test_relative_times(self):
        out = self.run_js("/js/format.js", """const now = 1_700_000_000_000; return [
            m.ago(now - 2000, now), m.ago((now - 12000) / 1000, now), m.ago(new Date(now - 180000).toISOString(), now),
            m.ago(now + 300000, now), m.ago(null, now), m.percent(1, 3), m.percent(0, 0)];""")
        self.assertEqual(out, ["just now", "12 s ago", "3 min ago", "in 5 min", "never", "33.3%", "0%"])

    def test_copy_works_without_the_clipboard_api(self):
        """On http://<LAN address> there is no navigator.clipboard (not a
        secure context): Copy falls back to selecting the text."""
        self.page.goto("/login")  # a page with a body to put the text in
        out = self.page.evaluate("""async () => {
            Object.defineProperty(window, "isSecureContext", { value: false, configurable: true });
            const m = await import("/js/ui.js");
            const box = document.createElement("textarea");
            box.value = "JOIN-CODE-123";
            document.body.append(box);
            const ok = await m.copyText(box.value, box);
            return [window.isSecureContext, ok, await navigator.clipboard.readText()];
        }""")
        self.assertEqual(out, [False, True, "JOIN-CODE-123"])

    def test_join_code_only_on_the_leader_holding_the_vip(self):
        out = self.run_js("/js/cluster/leader.js", """return [
            m.joinCodeBlocked(null),
            m.joinCodeBlocked({configuredRole: "standalone", effectiveRole: "standalone"}),
            m.joinCodeBlocked({configuredRole: "follower", effectiveRole: "follower"}),
            m.joinCodeBlocked({configuredRole: "leader", effectiveRole: "follower"}),
            m.joinCodeBlocked({configuredRole: "leader", effectiveRole: "leader"}),
        ];""")
        self.assertIn("Enable Leader first", out[0])
        self.assertIn("Enable Leader first", out[1])
        self.assertIn("Enable Leader first", out[2])
        self.assertIn("does not hold the VIP", out[3])
        self.assertIsNone(out[4])

    def test_cluster_view_sync_error_resolved_and_vip_owner(self):
        out = self.run_js("/js/session.js", """const v = (s) => { const x = m.clusterView(s); return [x.syncFailing, x.vipOwner]; };
            const err = {code: "LEADER_UNREACHABLE", message: "x", at: "2026-01-02T03:04:05.000Z"};
            return [
              v({configuredRole: "follower", sync: {lastSync: "2026-01-02T03:04:00.000Z", lastError: err}}),
              v({configuredRole: "follower", sync: {lastSync: "2026-01-02T03:04:09.000Z", lastError: err}}),
              v({configuredRole: "follower", sync: {lastSync: null, lastError: err}, roleOverride: "leader"}),
              v({configuredRole: "leader", roleOverride: "follower"}),
            ];""")
        self.assertEqual(out, [[True, False], [False, False], [True, True], [False, False]])

    def test_read_only_marks_controls_but_keeps_them_usable(self):
        """On a follower, edit controls get aria-disabled and the banner's
        note as description, never the disabled property (a change can
        still be tried, and the node's 409 shown); back to normal after."""
        self.page.goto("/login")
        out = self.page.evaluate("""async () => {
            const ui = await import("/js/ui.js");
            const { h } = await import("/js/dom.js");
            const input = h("input", { name: "x", "aria-describedby": "hint" });
            const cancel = h("button", { type: "button", "data-local": "" }, "Cancel");
            const box = ui.edit(h("fieldset", {}, input, h("button", {}, "Save"), cancel));
            const solo = ui.edit(h("input", { type: "checkbox", title: "mine" }));
            document.body.append(box, solo);
            const state = () => [input, box.querySelector("button"), cancel, solo].map((el) => [
                el.disabled, el.getAttribute("aria-disabled"), el.getAttribute("aria-describedby"), el.title]);
            const before = state();
            ui.setReadOnly(true);
            const late = ui.edit(h("button", {}, "Late"));
            const on = state();
            ui.setReadOnly(false);
            const off = state();
            // attempt(): a refused change puts the control back
            solo.checked = true;
            const run = ui.attempt(solo, false, async () => { throw new Error("409"); });
            let error = null;
            try { await run(); } catch (e) { error = e.message; }
            return { before, on, off, late: late.getAttribute("aria-disabled"), error, checked: solo.checked };
        }""")
        note = "Read-only: this node is a follower. Make changes on the leader/VIP."
        self.assertEqual(out["before"], [[False, None, "hint", ""], [False, None, None, ""],
                                         [False, None, None, ""], [False, None, None, "mine"]])
        self.assertEqual(out["on"], [[False, "true", "hint readonly-note", note],
                                     [False, "true", "readonly-note", note],
                                     [False, None, None, ""],
                                     [False, "true", "readonly-note", "mine"]])
        self.assertEqual(out["off"], out["before"])
        self.assertEqual(out["late"], "true")
        self.assertEqual([out["error"], out["checked"]], ["409", False])

    def test_release_offered_only_on_the_vip_holder_with_a_ready_peer(self):
        out = self.run_js("/js/cluster/release.js", """
            const ha = (state, role, release) => ({sidecar: {vrrpState: state, release}, roleFile: {role}});
            const peers = (...oks) => ({peers: oks.map((ok, i) => ({address: `198.18.0.${11 + i}`, ready: ok === null ? null : {ok, role: "follower"}}))});
            return [
              m.releaseOffer(null, peers(true)),
              m.releaseOffer(ha("BACKUP", "follower"), peers(true)),
              m.releaseOffer(ha("MASTER", "follower"), peers(true)),
              m.releaseOffer(ha("MASTER", "leader"), peers(false, null)),
              m.releaseOffer(ha("MASTER", "leader"), peers(false, true, true)),
              m.releaseOffer(ha("MASTER", "leader", {id: "x", state: "scheduled"}), peers(false)),
              m.releaseOffer(ha("MASTER", "leader", {id: "x", state: "released"}), peers(false)),
            ];""")
        self.assertEqual(out[:4], [None, None, None, None])
        self.assertEqual(out[4], {"ready": ["198.18.0.12", "198.18.0.13"], "pending": None})
        self.assertEqual(out[5], {"ready": [], "pending": {"id": "x", "state": "scheduled"}})
        self.assertIsNone(out[6])

    def test_release_button_asks_then_shows_the_answer(self):
        """The button sends POST /api/cluster/ha/release after a
        confirmation and shows the node's answer (here a stand-in for the
        API: the daemon needs a keepalived sidecar holding the VIP)."""
        from playwright.sync_api import expect

        sent = []

        def answer(route):
            sent.append((route.request.method, route.request.post_data_json))
            route.fulfill(status=202, content_type="application/json", body=(
                '{"id": "a1", "state": "scheduled", "inSeconds": 1, "readyPeers": ["198.18.0.12"],'
                ' "message": "The VIP moves to 198.18.0.12 in about a second."}'))

        self.page.route("**/api/cluster/ha/release", answer)
        self.page.goto("/login")
        self.page.evaluate("""async () => {
            const m = await import("/js/cluster/release.js");
            const el = document.createElement("div");
            const result = document.createElement("div");
            document.body.append(el, result);
            const offer = {ready: ["198.18.0.12"], pending: null};
            m.renderRelease(el, offer, { result });
            window.__button = el.querySelector("button");
            m.renderRelease(el, offer, { result });  // unchanged offer: same button
            window.__same = window.__button === el.querySelector("button");
        }""")
        self.assertTrue(self.page.evaluate("window.__same"))
        button = self.page.get_by_role("button", name="Hand over the VIP")
        expect(button).to_have_accessible_description(re.compile("198.18.0.12 is ready to take it"))
        button.click()
        dialog = self.page.get_by_role("dialog")
        expect(dialog).to_contain_text("Hand the VIP to 198.18.0.12?")
        dialog.get_by_role("button", name="Hand over the VIP").click()
        expect(self.page.locator("#release-result")).to_have_text(
            "The VIP moves to 198.18.0.12 in about a second.")
        self.assertEqual(sent, [("POST", {})])
