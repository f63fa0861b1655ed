"""Shared files, netinfo parsing, VRRP advert parsing, notify lines."""

import json
import os
import socket
import stat
import struct
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from sentinel.ha import files, netinfo
from sentinel.ha.notify import parse_line
from sentinel.ha.vrrpwatch import PeerTable, parse_packet


class FilesTests(SynchronousTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="sentinel-ha-")

    def test_atomic_write_mode_0600_even_with_lax_umask(self):
        path = os.path.join(self.dir, "sub", "config.json")
        old = os.umask(0)
        try:
            files.write_json(path, {"a": 1})
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(files.read_json(path), {"a": 1})
        self.assertEqual([n for n in os.listdir(os.path.dirname(path))], ["config.json"])

    def test_replacing_keeps_mode_and_leaves_no_temporaries(self):
        path = os.path.join(self.dir, "x.json")
        files.write_json(path, {"a": 1})
        files.write_json(path, {"a": 2})
        self.assertEqual(files.read_json(path), {"a": 2})
        self.assertEqual(os.listdir(self.dir), ["x.json"])

    def test_read_json_errors(self):
        self.assertIsNone(files.read_json(os.path.join(self.dir, "missing")))
        for content in (b"{", b"[1]", b"\xff", b" " * (files.MAX_FILE + 1)):
            path = os.path.join(self.dir, "bad")
            with open(path, "wb") as f:
                f.write(content)
            self.assertRaises(files.FileFormatError, files.read_json, path)

    def test_read_json_never_blocks_on_a_fifo_or_reads_a_directory(self):
        fifo = os.path.join(self.dir, "status.json")
        os.mkfifo(fifo)  # the daemon reads on its reactor: waiting for a writer stops DNS
        e = self.assertRaises(files.FileFormatError, files.read_json, fifo)
        self.assertIn("not a regular file", str(e))
        directory = os.path.join(self.dir, "peers.json")
        os.mkdir(directory)
        e = self.assertRaises(files.FileFormatError, files.read_json, directory)
        self.assertIn(f"{directory}: not a regular file", str(e))

    def test_role_file(self):
        path = os.path.join(self.dir, "cluster_role")
        files.write_role(path, "leader")
        with open(path) as f:
            self.assertEqual(f.read(), "leader\n")
        self.assertEqual(files.read_role(path), "leader")
        self.assertRaises(ValueError, files.write_role, path, "master")
        self.assertTrue(files.remove_file(path))
        self.assertFalse(files.remove_file(path))

    def test_daemon_endpoint(self):
        self.assertEqual(files.daemon_endpoint("", 8080)["readyUrl"],
                         "http://127.0.0.1:8080/api/cluster/ready")
        self.assertEqual(files.daemon_endpoint("::", 8080)["host"], "127.0.0.1")
        self.assertEqual(files.daemon_endpoint("198.18.0.2", 18080)["readyUrl"],
                         "http://198.18.0.2:18080/api/cluster/ready")
        self.assertEqual(files.daemon_endpoint("::1", 80)["readyUrl"],
                         "http://[::1]:80/api/cluster/ready")

    def test_config_document_round_trip(self):
        doc = files.config_document({"enabled": True}, "SEALED",
                                    files.daemon_endpoint("", 8080))
        fields, sealed, daemon = files.split_config_document(json.loads(json.dumps(doc)))
        self.assertEqual((fields, sealed, daemon["port"]), ({"enabled": True}, "SEALED", 8080))
        for broken in ({**doc, "version": 2}, {**doc, "daemon": None},
                       {**doc, "daemon": {**doc["daemon"], "port": "80"}},
                       {**doc, "password": {"sealed": 5}}):
            self.assertRaises(files.FileFormatError, files.split_config_document, broken)


IP_ADDR = json.dumps([
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "link_type": "loopback",
     "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "UP", "LOWER_UP"],
     "link_type": "ether", "address": "aa:bb:cc:dd:ee:ff",
     "addr_info": [{"family": "inet", "local": "198.18.0.2", "prefixlen": 24},
                   {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
    {"ifindex": 3, "ifname": "wlan0", "flags": ["BROADCAST"], "link_type": "ether",
     "addr_info": []},
    {"garbage": True},
])


class NetinfoTests(SynchronousTestCase):
    def test_parse(self):
        info = netinfo.build(IP_ADDR, '[{"dst":"default","gateway":"198.18.0.1","dev":"eth0"}]',
                             100.0)
        self.assertEqual([i["name"] for i in info["interfaces"]], ["lo", "eth0", "wlan0"])
        eth0 = info["interfaces"][1]
        self.assertEqual(eth0["addresses"], ["198.18.0.2/24", "fe80::1/64"])
        self.assertTrue(eth0["up"])
        self.assertEqual(eth0["mac"], "aa:bb:cc:dd:ee:ff")
        self.assertEqual(info["defaultRoute"], {"interface": "eth0", "gateway": "198.18.0.1"})
        self.assertEqual(info["suggestedInterface"], "eth0")

    def test_no_default_route_suggests_first_lan_interface(self):
        info = netinfo.build(IP_ADDR, "[]", 0)
        self.assertIsNone(info["defaultRoute"])
        self.assertEqual(info["suggestedInterface"], "eth0")

    def test_bad_output(self):
        self.assertRaises(netinfo.NetinfoError, netinfo.build, "not json", "[]", 0)
        self.assertRaises(netinfo.NetinfoError, netinfo.build, "{}", "[]", 0)

    def test_fresh(self):
        self.assertIsNotNone(netinfo.fresh({"detectedAt": 100}, 150))
        self.assertIsNone(netinfo.fresh({"detectedAt": 100}, 1000))
        self.assertIsNone(netinfo.fresh(None, 0))


def vrrp_packet(source="198.18.0.3", vrid=53, priority=110, password=b"s3cret",
                version=2, ttl=255):
    vrrp = bytes([(version << 4) | 1, vrid, priority, 1, 1 if password else 0, 1, 0, 0])
    vrrp += socket.inet_aton("198.18.0.53") + password.ljust(8, b"\0")
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(vrrp), 0, 0, ttl, 112, 0,
                         socket.inet_aton(source), socket.inet_aton("224.0.0.18"))
    return header + vrrp


class VrrpWatchTests(SynchronousTestCase):
    def test_parse(self):
        a = parse_packet(vrrp_packet())
        self.assertEqual((a.source, a.vrid, a.priority, a.version, a.advert_interval),
                         ("198.18.0.3", 53, 110, 2, 1.0))
        self.assertEqual(a.auth, b"s3cret\0\0")

    def test_garbage_is_ignored(self):
        for junk in (b"", b"\x45" + b"\0" * 10, vrrp_packet()[:22], b"\x60" * 60,
                     vrrp_packet(version=7)):
            self.assertIsNone(parse_packet(junk))

    def test_peer_table(self):
        table = PeerTable(53, "s3cret", own_addresses={"198.18.0.2"})
        self.assertTrue(table.observe(parse_packet(vrrp_packet()), 10.0))
        self.assertFalse(table.observe(parse_packet(vrrp_packet(vrid=54)), 10.0))
        self.assertFalse(table.observe(parse_packet(vrrp_packet(source="198.18.0.2")), 10.0))
        snap = table.snapshot(11.0)
        self.assertEqual(snap["peers"], {"198.18.0.3": {"lastSeen": 10.0, "priority": 110,
                                                        "advertInterval": 1.0,
                                                        "lastAlive": 10.0}})
        # Leaving (priority 0) keeps the last time it was alive.
        self.assertTrue(table.observe(parse_packet(vrrp_packet(priority=0)), 12.0))
        self.assertEqual(table.snapshot(12.0)["peers"]["198.18.0.3"],
                         {"lastSeen": 12.0, "priority": 0, "advertInterval": 1.0,
                          "lastAlive": 10.0})

    def test_wrong_password_is_reported_not_counted(self):
        table = PeerTable(53, "s3cret")
        self.assertFalse(table.observe(parse_packet(vrrp_packet(password=b"other")), 1.0))
        self.assertEqual(table.snapshot(1.0)["passwordMismatch"], ["198.18.0.3"])
        self.assertEqual(table.snapshot(1.0)["peers"], {})
        self.flushLoggedErrors()


class NotifyLineTests(SynchronousTestCase):
    def test_states_to_roles(self):
        self.assertEqual(parse_line('INSTANCE "sentinel" MASTER 120'), ("MASTER", "leader"))
        self.assertEqual(parse_line('INSTANCE "sentinel" BACKUP 120\n'), ("BACKUP", "follower"))
        self.assertEqual(parse_line('INSTANCE "sentinel" FAULT 120'), ("FAULT", "follower"))
        self.assertEqual(parse_line('INSTANCE "sentinel" STOP 120'), ("STOP", "follower"))

    def test_other_lines_are_ignored(self):
        for line in ('INSTANCE "other" MASTER 100', 'GROUP "sentinel" MASTER',
                     'INSTANCE "sentinel" MASTER_RX_LOWER_PRI 1', "", "junk"):
            self.assertIsNone(parse_line(line))
