"""
The default access list answers clients on the daemon's own link, not
others: two network namespaces of our own joined by a veth pair, the
daemon in one (198.18.5.1/24, 198.18.0.0/15 is not a private range), the
client in the other.  The client's on-link address (198.18.5.2) gets
answers with the default settings; its second address (198.19.7.2/24),
neither private nor on-link for the daemon, gets silence, although the
daemon has a route back to it.  The namespaces (and the links and
processes in them) are removed in the cleanup, also when the test fails.
"""

import uuid

import dns.message
import dns.rcode
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.api import isolated
from tests.api.daemon_admin import create_token, setup_admin
from tests.dns.clients import ZONE, addresses, raw_udp
from tests.support.upstream import Upstream

SERVER, CLIENT, STRANGER = "198.18.5.1", "198.18.5.2", "198.19.7.2"


class OnLinkE2ETests(SynchronousTestCase):
    def setUp(self):
        reason = isolated.skip_reason()
        if reason:
            raise SkipTest(reason)
        self.srv = isolated.loopback_namespace(self)
        self.cli = isolated.loopback_namespace(self)
        a, b = f"vs{uuid.uuid4().hex[:6]}", f"vc{uuid.uuid4().hex[:6]}"
        ip = isolated._ip
        # Created inside the namespaces: removed with them.
        ip("-n", self.srv, "link", "add", a, "type", "veth", "peer", "name", b,
           "netns", self.cli)
        ip("-n", self.srv, "addr", "add", f"{SERVER}/24", "dev", a)
        ip("-n", self.srv, "link", "set", a, "up")
        ip("-n", self.srv, "route", "add", "198.19.7.0/24", "dev", a)
        ip("-n", self.cli, "addr", "add", f"{CLIENT}/24", "dev", b)
        ip("-n", self.cli, "addr", "add", f"{STRANGER}/24", "dev", b)
        ip("-n", self.cli, "link", "set", b, "up")
        up = isolated.in_namespace(self.srv, Upstream.start, self, ZONE)
        self.d = isolated.IsolatedDaemon(self, self.srv, upstreams=[up.spec],
                                         args=["--dns-interface", ""]).start()

    def ask(self, source, attempts=3):
        """The A answers for source, or None after ``attempts`` silent tries."""
        q = dns.message.make_query("www.example.test", "A")
        for _ in range(attempts):
            reply, _ = isolated.in_namespace(self.cli, raw_udp, self.d.dns_port, q.to_wire(),
                                             server=SERVER, timeout=1.5, source=source)
            if reply is not None:
                r = dns.message.from_wire(reply)
                self.assertEqual(r.rcode(), dns.rcode.NOERROR)
                return addresses(r)
        return None

    def test_on_link_client_answered_stranger_not(self):
        self.assertEqual(self.ask(CLIENT), ["198.18.0.10"])
        self.assertIsNone(self.ask(STRANGER))
        status = self.d.get("/api/dns/status", headers=self.auth()).json()
        self.assertIn("198.18.5.0/24", status["local_networks"])
        # The silence is the access list: allowed explicitly, the same
        # source is answered (so the route back works) ...
        self.assertEqual(self.put({"allowed_networks": ["198.19.7.0/24"]}).status, 200)
        self.assertEqual(self.ask(STRANGER), ["198.18.0.10"])
        self.assertEqual(self.ask(CLIENT), ["198.18.0.10"])  # on-link still answered
        # ... and with local_networks off only the configured networks are.
        self.assertEqual(self.put({"local_networks": False}).status, 200)
        self.assertIsNone(self.ask(CLIENT))
        self.assertEqual(self.ask(STRANGER), ["198.18.0.10"])
        self.assertIsNone(self.d.process.poll())

    def auth(self):
        if not hasattr(self, "_auth"):
            token = create_token(self.d, setup_admin(self.d))
            self._auth = {"Authorization": f"Bearer {token}"}
        return self._auth

    def put(self, body):
        return self.d.request("PUT", "/api/dns/settings", body, headers=self.auth())
