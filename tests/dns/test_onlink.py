"""On-link networks for the default access list (sentinel.dns.onlink, access, settings)."""

import ipaddress
import socket
import struct
import sys

from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sentinel.dns import onlink
from sentinel.dns.access import DENIED, OK, Access
from sentinel.dns.onlink import (
    NetlinkError, OnLinkWatcher, networks, parse_addresses, read_addresses,
)
from sentinel.dns.settings import DEFAULTS, SettingsError, from_data

IFA_LABEL = 3


def rta(kind, value):
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + b"\x00" * (-len(raw) % 4)


def message(kind, body, seq=1):
    raw = struct.pack("=IHHII", 16 + len(body), kind, 2, seq, 0) + body
    return raw + b"\x00" * (-len(raw) % 4)


def newaddr(family, prefixlen, *attrs):
    return message(onlink.RTM_NEWADDR, struct.pack("=BBBBI", family, prefixlen, 0, 0, 2)
                   + b"".join(attrs))


def v4(text):
    return socket.inet_pton(socket.AF_INET, text)


def v6(text):
    return socket.inet_pton(socket.AF_INET6, text)


DONE = message(onlink.NLMSG_DONE, struct.pack("=i", 0))


def nets(*texts):
    return tuple(ipaddress.ip_network(t) for t in texts)


class ParseTests(SynchronousTestCase):
    def test_addresses_and_prefixes_from_a_dump(self):
        dump = (
            newaddr(socket.AF_INET, 8, rta(onlink.IFA_ADDRESS, v4("127.0.0.1")),
                    rta(onlink.IFA_LOCAL, v4("127.0.0.1")), rta(IFA_LABEL, b"lo\x00"))
            # a label of odd length: the next attribute is found after padding
            + newaddr(socket.AF_INET, 24, rta(IFA_LABEL, b"eth0:1\x00"),
                      rta(onlink.IFA_LOCAL, v4("203.0.113.7")),
                      rta(onlink.IFA_ADDRESS, v4("203.0.113.7")))
            # point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL is ours
            + newaddr(socket.AF_INET, 32, rta(onlink.IFA_ADDRESS, v4("198.51.100.1")),
                      rta(onlink.IFA_LOCAL, v4("198.51.100.2")))
            + newaddr(socket.AF_INET6, 64, rta(onlink.IFA_ADDRESS, v6("2001:db8:5::17")))
            + newaddr(socket.AF_INET6, 64, rta(onlink.IFA_ADDRESS, b"\x01\x02"))  # cut short
            + message(99, b"\x00" * 8)  # another message type
            + DONE
            + newaddr(socket.AF_INET, 24, rta(onlink.IFA_LOCAL, v4("192.0.2.9")))  # after DONE
        )
        self.assertEqual(parse_addresses(dump), [
            ("127.0.0.1", 8), ("203.0.113.7", 24), ("198.51.100.2", 32),
            ("2001:db8:5::17", 64)])

    def test_truncated_dump_keeps_what_is_complete(self):
        whole = newaddr(socket.AF_INET, 24, rta(onlink.IFA_LOCAL, v4("203.0.113.7")))
        self.assertEqual(parse_addresses(whole + whole[:20]), [("203.0.113.7", 24)])
        self.assertEqual(parse_addresses(b""), [])

    def test_error_message_raises(self):
        error = message(onlink.NLMSG_ERROR, struct.pack("=i", -1) + b"\x00" * 16)
        with self.assertRaises(NetlinkError):
            parse_addresses(error)

    def test_networks_clear_host_bits_and_leave_out_loopback(self):
        self.assertEqual(networks([
            ("127.0.0.1", 8), ("::1", 128), ("203.0.113.7", 24), ("203.0.113.9", 24),
            ("2001:db8:5::17", 64), ("fe80::1%eth0", 64), ("198.18.0.53", 32),
            ("not an address", 24), ("10.0.0.1", 99),
        ]), nets("198.18.0.53/32", "203.0.113.0/24", "2001:db8:5::/64", "fe80::/64"))

    def test_this_machine(self):
        if not sys.platform.startswith("linux"):
            raise SkipTest("netlink is Linux")
        found = read_addresses()
        self.assertIn(("127.0.0.1", 8), found)
        # what the kernel reports for lo, through a real netlink socket
        self.assertTrue(all(isinstance(p, int) for _, p in found))


class WatcherTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.applied = []
        self.answers = [[("203.0.113.7", 24)]]

        def read():
            answer = self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.watcher = OnLinkWatcher(self.clock, self.applied.append, read=read, interval=30)

    def test_read_at_start_and_followed(self):
        self.watcher.start()
        self.assertEqual(self.applied, [nets("203.0.113.0/24")])
        self.clock.advance(30)
        self.assertEqual(len(self.applied), 1)  # unchanged: not applied again
        self.answers[0] = [("203.0.113.7", 24), ("2001:db8:5::17", 64)]
        self.clock.advance(29)
        self.assertEqual(len(self.applied), 1)
        self.clock.advance(1)
        self.assertEqual(self.applied[-1], nets("203.0.113.0/24", "2001:db8:5::/64"))
        self.answers[0] = []  # the interface went down
        self.clock.advance(30)
        self.assertEqual(self.applied[-1], ())
        self.watcher.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failed_read_keeps_the_last_networks(self):
        self.watcher.start()
        self.answers[0] = OSError("no netlink here")
        self.clock.advance(30)
        self.clock.advance(30)
        self.assertEqual(self.applied, [nets("203.0.113.0/24")])
        self.assertEqual(self.watcher.current, nets("203.0.113.0/24"))
        self.answers[0] = [("198.18.5.1", 24)]
        self.clock.advance(30)  # and it keeps reading
        self.assertEqual(self.applied[-1], nets("198.18.5.0/24"))
        self.watcher.stop()


    def test_a_failing_apply_does_not_stop_the_watcher(self):
        fails = [ValueError("a bad value")]

        def apply(networks):
            if fails:
                raise fails.pop()
            self.applied.append(networks)

        self.watcher.apply = apply
        self.watcher.start()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual((self.applied, self.watcher.current), ([], None))
        self.clock.advance(30)  # applied again on the next read
        self.assertEqual(self.applied, [nets("203.0.113.0/24")])
        self.answers[0] = [("198.18.5.1", 24)]
        self.clock.advance(30)
        self.assertEqual(self.applied[-1], nets("198.18.5.0/24"))
        self.watcher.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

class AccessTests(SynchronousTestCase):
    def test_on_link_sources_are_answered(self):
        access = Access()
        self.assertEqual(access.check("203.0.113.20", 0.0), DENIED)
        self.assertEqual(access.check("2001:db8:5::20", 0.0), DENIED)
        access.set_local(nets("203.0.113.0/24", "2001:db8:5::/64"))
        # decided again, also for a client refused before
        self.assertEqual(access.check("203.0.113.20", 0.0), OK)
        self.assertEqual(access.check("2001:db8:5::20", 0.0), OK)
        self.assertEqual(access.check("::ffff:203.0.113.21", 0.0), OK)
        self.assertEqual(access.check("203.0.114.20", 0.0), DENIED)
        self.assertEqual(access.check("2001:db8:6::20", 0.0), DENIED)
        self.assertEqual(access.check("192.168.1.5", 0.0), OK)  # private as before

    def test_networks_that_go_away_are_refused_again(self):
        access = Access(rate=0)
        access.set_local(nets("203.0.113.0/24"))
        self.assertEqual(access.check("203.0.113.20", 0.0), OK)
        self.assertIn("203.0.113.20", access.unlimited)  # the fast path skips the check
        access.set_local(())
        self.assertNotIn("203.0.113.20", access.unlimited)
        self.assertEqual(access.check("203.0.113.20", 0.0), DENIED)

    def test_turned_off(self):
        access = Access()
        access.set_local(nets("203.0.113.0/24"))
        access.configure(["10.0.0.0/8"], 1000, 2000, [], local_enabled=False)
        self.assertEqual(access.check("203.0.113.20", 0.0), DENIED)
        self.assertEqual(access.check("10.1.2.3", 0.0), OK)
        self.assertEqual(access.check("127.0.0.1", 0.0), OK)
        access.configure(["10.0.0.0/8"], 1000, 2000, [], local_enabled=True)
        self.assertEqual(access.check("203.0.113.20", 0.0), OK)  # the networks were kept

    def test_setting(self):
        self.assertTrue(DEFAULTS.local_networks)
        self.assertFalse(from_data({"local_networks": False}).local_networks)
        self.assertTrue(from_data({"allowed_networks": ["10.0.0.0/8"]}).local_networks)
        with self.assertRaises(SettingsError) as e:
            from_data({"local_networks": "yes"})
        self.assertEqual(e.exception.field, "local_networks")
