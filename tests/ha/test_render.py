"""keepalived.conf rendering: structure, semantics, injection, and keepalived's own check."""

import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SynchronousTestCase

import attr

from sentinel.ha.model import parse_settings
from sentinel.ha.render import RenderError, RenderPaths, describe, render

PATHS = RenderPaths(
    notify_fifo="/run/sentinel-keepalived/notify.fifo",
    alive_file="/run/sentinel-keepalived/alive",
    release_file="/run/sentinel-keepalived/release",
    check_command=("/usr/bin/python3", "-I", "-S", "/opt/sentinel/ha/check.py",
                   "--url", "http://127.0.0.1:8080/api/cluster/ready"),
)


def settings(**kw):
    data = {"enabled": True, "vip": "198.18.0.53/24", "interface": "eth0", "priority": 120}
    data.update(kw)
    return parse_settings(data, password_known=True)[0]


def tokens(text):
    """The config as (line tokens) with comments dropped, like keepalived reads it."""
    out = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            out.append(line.split())
    return out


def keepalived_check(text):
    """(exit status, output) of keepalived --config-test on text."""
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "keepalived.conf")
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.run(["keepalived", "--config-test", "--use-file", conf,
                            "--log-console", "--dont-fork"],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr


class RenderTests(SynchronousTestCase):
    def test_instance_semantics(self):
        t = tokens(render(settings(), "s3cret", PATHS))
        for expected in (["state", "BACKUP"], ["nopreempt"], ["interface", "eth0"],
                         ["virtual_router_id", "53"], ["priority", "120"],
                         ["advert_int", "1"], ["auth_type", "PASS"],
                         ["auth_pass", "s3cret"], ["198.18.0.53/24", "dev", "eth0"],
                         ["weight", "0"], ["fall", "2"], ["rise", "2"], ["interval", "1"],
                         ["garp_master_repeat", "3"], ["enable_script_security"],
                         ["vrrp_notify_fifo", PATHS.notify_fifo]):
            self.assertIn(expected, t)
        self.assertNotIn(["unicast_peer", "{"], t)

    def test_both_track_files_put_the_instance_in_fault(self):
        text = render(settings(), "s3cret", PATHS)
        t = tokens(text)
        for name, path in (("sentinel_alive", PATHS.alive_file),
                           ("sentinel_release", PATHS.release_file)):
            i = t.index(["track_file", name, "{"])
            self.assertEqual(t[i + 1:i + 4], [["file", f'"{path}"'], ["weight", "0"], ["}"]])
        i = t.index(["track_file", "{"])
        self.assertEqual(t[i + 1:i + 4], [["sentinel_alive"], ["sentinel_release"], ["}"]])

    def test_check_script_is_one_quoted_command(self):
        text = render(settings(), "s3cret", PATHS)
        self.assertIn('script "/usr/bin/python3 -I -S /opt/sentinel/ha/check.py --url '
                      'http://127.0.0.1:8080/api/cluster/ready"', text)

    def test_unicast(self):
        s = settings(mode="unicast", unicastPeers=["198.18.0.3", "198.18.0.4"],
                     sourceIp="198.18.0.2")
        t = tokens(render(s, "s3cret", PATHS))
        i = t.index(["unicast_peer", "{"])
        self.assertEqual(t[i + 1:i + 4], [["198.18.0.3"], ["198.18.0.4"], ["}"]])
        self.assertIn(["unicast_src_ip", "198.18.0.2"], t)

    def test_password_with_sed_metacharacters_is_kept_verbatim(self):
        t = tokens(render(settings(), "a|b&c/", PATHS))
        self.assertIn(["auth_pass", "a|b&c/"], t)

    def test_disabled_is_not_rendered(self):
        self.assertRaises(RenderError, render, settings(enabled=False), "x", PATHS)

    def test_unvalidated_values_are_refused(self):
        """Even settings that bypassed validation cannot inject configuration."""
        good = settings()
        attacks = {
            "interface": ["eth0\n}\nvrrp_instance evil {", "eth0 # x", 'eth0"', "a" * 300],
            "vip": ["198.18.0.53/24 dev eth0\n}", "198.18.0.53/24\x00", "1.2.3.4/24 x"],
            "vrid": ["53\n", "53 }", -1, True, 1000],
            "priority": ["120\nnopreempt", 1234],
            "advert_interval": ["1 }"],
            "unicast_peers": (["198.18.0.3\n}"], ["198.18.0.3 {"]),
            "source_ip": ["198.18.0.2\n"],
        }
        for field, values in attacks.items():
            for value in values:
                mode = "unicast" if field == "unicast_peers" else good.mode
                bad = _replace(good, **{field: value, "mode": mode})
                self.assertRaises(RenderError, render, bad, "s3cret", PATHS)
        for password in ['x"\n}', "a b", "{", "a#b", "$X", "123456789", "a\n"]:
            self.assertRaises(RenderError, render, good, password, PATHS)
        for arg in ['/x"; rm -rf /', "/a b", "/x\n"]:
            for paths in (RenderPaths(notify_fifo=arg, alive_file="/a", check_command=("/c",)),
                          RenderPaths(notify_fifo="/f", alive_file="/a", release_file=arg,
                                      check_command=("/c",))):
                self.assertRaises(RenderError, render, good, "s3cret", paths)

    def test_describe(self):
        self.assertEqual(describe(settings()),
                         "interface=eth0 vip=198.18.0.53/24 vrid=53 priority=120 advert=1s "
                         "mode=multicast")


def _replace(s, **changes):
    return attr.evolve(s, **changes)


class KeepalivedAcceptsTests(SynchronousTestCase):
    """The real keepalived parses what we render, without complaint."""

    def setUp(self):
        if shutil.which("keepalived") is None:
            raise self.skipTest("keepalived is not installed (scripts/setup --test installs it)")

    def test_multicast_and_unicast_configs_pass_config_test(self):
        for s in (settings(),
                  settings(mode="unicast", unicastPeers=["198.18.0.3"], sourceIp="198.18.0.2",
                           advertInterval=3, virtualRouterId=255, priority=1)):
            status, output = keepalived_check(render(s, "a|b&c", PATHS))
            self.assertEqual(status, 0, output)
            self.assertNotIn("Unknown keyword", output)

    def test_a_broken_config_fails_config_test(self):
        """(So the test above can fail.)"""
        text = render(settings(), "a|b&c", PATHS).replace("virtual_router_id 53",
                                                           "virtual_router_id 999")
        status, output = keepalived_check(text)
        self.assertNotEqual(status, 0)
