"""
Blocklist downloads (in memory via StubTreq): formats stored and enforced,
conditional requests, limits, failures that keep the last good contents
and raise one notification, refresh at start / on schedule / for new lists.
"""

import random

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from sentinel.dns.decision import ALLOW, BLOCK, PASS, PolicySource
from sentinel.filtering.engine import PolicyEngine
from sentinel.filtering.listformat import decode
from sentinel.filtering.names import key_to_name
from sentinel.filtering.refresher import BlocklistRefresher
from tests.filtering.helpers import wire
from tests.filtering.listserver import ListResource
from tests.filtering.storehelp import inline, open_store

HOSTS = "# hosts\n127.0.0.1 localhost\n0.0.0.0 ads.example.com\n0.0.0.0 track.example.net\n"
ADBLOCK = "[Adblock Plus 2.0]\n||ads.example.org^\n@@||ok.ads.example.org^\nx.com##.ad\n"
PLAIN = "# plain\nplain.example.com\n*.wild.example.com\nbücher.example\n"


class RefresherTests(TestCase):
    async def setUp(self):
        self.store = await open_store(self)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.lists = ListResource()
        self.http = StubTreq(self.lists)
        self.source = PolicySource()
        self.engine = PolicyEngine(self.store, self.clock, self.source, run=inline)
        self.engine.startService()
        self.addCleanup(self.engine.stopService)
        await self.engine.settled()
        self.refresher = BlocklistRefresher(self.store, self.clock, self.http,
                                            fetch_options={"max_bytes": 10_000})

    def start_refresher(self):
        self.refresher.startService()
        self.addCleanup(self.refresher.stopService)

    async def add(self, path, **fields):
        data = {"name": path, "url": f"http://lists.test{path}"}
        data.update(fields)
        return int((await self.store.create("blocklist", data)).key)

    async def refresh(self, list_id):
        data = await self.refresher.refresh(list_id)
        await self.engine.settled()
        return data

    async def checked(self):
        """Wait for the refresher's latest due-check (and let its loop reschedule)."""
        await self.refresher.checking
        await deferLater(reactor, 0)

    def decide(self, name):
        d = self.source.current.decide("192.168.1.2", wire(name), 1)
        return d.action, d.reason

    async def stored_names(self, list_id):
        data = (await self.store.get("blocklist", list_id)).data
        blocked, allowed = decode(await self.store.get_blob(data["content"]["sha256"]))
        return sorted(map(key_to_name, blocked)), sorted(map(key_to_name, allowed))

    async def test_each_format_is_stored_normalized_and_enforced(self):
        self.lists.serve("/hosts", HOSTS)
        self.lists.serve("/adblock", ADBLOCK)
        self.lists.serve("/plain", PLAIN)
        ids = [await self.add(p) for p in ("/hosts", "/adblock", "/plain")]
        for i in ids:
            data = await self.refresh(i)
            self.assertTrue(data["status"]["ok"], data)
        self.assertEqual(await self.stored_names(ids[0]),
                         (["ads.example.com", "track.example.net"], []))
        self.assertEqual(await self.stored_names(ids[1]),
                         (["ads.example.org"], ["ok.ads.example.org"]))
        self.assertEqual(await self.stored_names(ids[2]), (
            ["plain.example.com", "wild.example.com", "xn--bcher-kva.example"], []))
        content = (await self.store.get("blocklist", ids[1])).data["content"]
        self.assertEqual((content["domains"], content["allows"], content["skipped"]), (1, 1, 1))
        self.assertEqual(self.decide("x.ads.example.com"), (BLOCK, f"blocklist:{ids[0]}"))
        self.assertEqual(self.decide("ads.example.org"), (BLOCK, f"blocklist:{ids[1]}"))
        self.assertEqual(self.decide("ok.ads.example.org"), (ALLOW, f"blocklist:{ids[1]}"))
        self.assertEqual(self.decide("a.wild.example.com"), (BLOCK, f"blocklist:{ids[2]}"))

    async def test_conditional_request_and_unchanged_contents(self):
        self.lists.serve("/l", HOSTS, etag='"v1"')
        list_id = await self.add("/l")
        first = await self.refresh(list_id)
        self.clock.advance(10)
        revision = await self.store.revision()
        second = await self.refresh(list_id)
        self.assertEqual(self.lists.requests[-1][1], '"v1"')
        self.assertEqual(second["content"], first["content"])
        self.assertEqual(await self.store.revision(), revision + 1)  # status only

    async def test_failure_keeps_contents_and_notifies_once_per_error(self):
        self.lists.serve("/l", HOSTS)
        list_id = await self.add("/l")
        await self.refresh(list_id)
        self.lists.serve("/l", "oops", status=500)
        for _ in range(2):
            data = await self.refresh(list_id)
        self.assertEqual(data["status"]["ok"], False)
        self.assertIn("HTTP 500", data["status"]["error"])
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))
        notes = await self.store.list_notifications()
        self.assertEqual(len(notes), 1)
        self.assertIn("previous contents stay in use", notes[0]["message"])
        self.lists.serve("/l", "")
        data = await self.refresh(list_id)
        self.assertIn("no domains found", data["status"]["error"])
        self.assertEqual(len(await self.store.list_notifications()), 2)
        self.lists.serve("/l", "new.example.com\n")
        data = await self.refresh(list_id)
        self.assertEqual((data["status"]["ok"], data["content"]["domains"]), (True, 1))
        self.assertEqual(self.decide("ads.example.com"), (PASS, ""))

    async def test_limits_size_redirects_scheme(self):
        self.lists.serve("/big", "a.example.com\n" * 2000)
        self.lists.serve("/loop", "", status=302, headers={"Location": "/loop"})
        self.lists.serve("/ftp", "", status=301, headers={"Location": "ftp://x/y"})
        self.lists.serve("/moved", "", status=301, headers={"Location": "/real"})
        self.lists.serve("/real", "real.example.com\n")
        errors = {}
        for path in ("/big", "/loop", "/ftp", "/moved", "/missing"):
            data = await self.refresh(await self.add(path))
            errors[path] = data["status"]["error"]
        self.assertIn("larger than the limit", errors["/big"])
        self.assertIn("more than 5 redirects", errors["/loop"])
        self.assertIn("only http and https", errors["/ftp"])
        self.assertEqual(errors["/moved"], "")
        self.assertIn("HTTP 404", errors["/missing"])

    async def test_server_text_in_errors_is_shortened(self):
        """A redirect's URL is the server's to choose (up to the 16 KB a header
        line may hold); it reaches the list's status and a notification
        shortened."""
        long_path = "/" + "x" * 10_000
        self.lists.serve("/ftp", "", status=301, headers={"Location": "ftp://h" + long_path})
        self.lists.serve("/gone", "", status=302, headers={"Location": long_path})
        for path, start in (("/ftp", "refusing to follow 'ftp://h/xx"),
                            ("/gone", "HTTP 404 from http://lists.test/xx")):
            error = (await self.refresh(await self.add(path)))["status"]["error"]
            self.assertTrue(error.startswith(start), error)
            self.assertLess(len(error), 300)
        for note in await self.store.list_notifications():
            self.assertLess(len(note["message"]), 400)

    async def test_timeout(self):
        self.lists.serve("/slow", "", status="hang")
        list_id = await self.add("/slow")
        d = self.refresher.refresh(list_id)
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        self.assertNoResult(d)
        self.clock.advance(60)
        data = await d
        self.assertIn("within 60 seconds", data["status"]["error"])

    async def test_a_web_page_does_not_replace_the_list(self):
        """A parked domain's page or a captive portal answers 200 with HTML --
        which can hold a line that reads as a domain.  It is refused."""
        self.lists.serve("/l", HOSTS)
        list_id = await self.add("/l")
        await self.refresh(list_id)
        before = (await self.store.get("blocklist", list_id)).data["content"]
        self.lists.serve("/l", "<!DOCTYPE html>\n<html><head><title>\nlists.example.org\n"
                               "</title></head><body>This domain is for sale</body></html>\n")
        data = await self.refresh(list_id)
        self.assertFalse(data["status"]["ok"])
        self.assertEqual(data["status"]["error"], "the server sent a web page (HTML), not a list")
        self.assertEqual(data["content"], before)
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))

    async def test_binary_answers_keep_the_previous_contents(self):
        import gzip

        self.lists.serve("/l", HOSTS)
        list_id = await self.add("/l")
        await self.refresh(list_id)
        before = (await self.store.get("blocklist", list_id)).data["content"]
        for body in (random.Random(7).randbytes(8192), gzip.compress(HOSTS.encode()), b"\x00" * 4096,
                     b"\xff\xfe" + "0.0.0.0 ads.example.com\n".encode("utf-16-le")):
            self.lists.serve("/l", body)
            data = await self.refresh(list_id)
            self.assertFalse(data["status"]["ok"], body[:20])
            self.assertIn("no domains found", data["status"]["error"])
            self.assertIn("is this a blocklist?", data["status"]["error"])
            self.assertEqual(data["content"], before)
            self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))

    async def test_slow_drip_times_out_and_keeps_the_previous_contents(self):
        self.lists.serve("/l", HOSTS)
        list_id = await self.add("/l")
        await self.refresh(list_id)
        self.lists.serve("/l", "0.0.0.0 a.example.com\n", status="drip")
        d = self.refresher.refresh(list_id)
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        self.assertNoResult(d)
        self.clock.advance(60)
        data = await d
        await self.engine.settled()
        self.assertIn("no complete answer within 60 seconds", data["status"]["error"])
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))

    async def test_endless_body_without_length_is_cut_at_the_cap(self):
        """A huge (say 2 GB) chunked answer: refused as soon as the cap is passed,
        not buffered and not waited for."""
        self.lists.serve("/l", HOSTS)
        list_id = await self.add("/l")
        await self.refresh(list_id)
        self.lists.serve("/l", "0.0.0.0 a.example.com\n" * 1000, status="drip")  # 22 KB
        data = await self.refresh(list_id)  # no clock advance: not a time-out
        self.assertIn("larger than the limit of 10000 bytes", data["status"]["error"])
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{list_id}"))

    async def test_refresh_at_start_on_schedule_and_for_new_lists(self):
        self.lists.serve("/a", HOSTS)
        self.lists.serve("/b", PLAIN)
        self.lists.serve("/c", PLAIN)
        a = await self.add("/a")
        await self.add("/c", mode="disabled")  # disabled and unused: not downloaded
        self.start_refresher()
        await self.checked()
        await self.engine.settled()
        self.assertEqual(self.lists.count("/a"), 1)
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{a}"))
        b = await self.add("/b")  # a new list is downloaded at once
        await self.refresher.refresh(b)
        self.assertEqual(self.lists.count("/b"), 1)
        self.clock.advance(23 * 3600)
        await self.checked()
        self.assertEqual(self.lists.count("/a"), 1)
        self.clock.advance(3600)
        await self.checked()
        self.assertEqual(self.lists.count("/a"), 2)
        self.assertEqual(self.lists.count("/c"), 0)

    async def test_a_damaged_list_entity_does_not_stop_the_others_refreshing(self):
        """Entities can arrive by sync or a restore unvalidated: one with a
        damaged status (or no dict at all) is passed over, not the end of
        every list's refresh."""
        self.lists.serve("/a", HOSTS)
        await self.store.put("blocklist", 7, {"name": "x", "url": "http://lists.test/x",
                                              "status": "garbage"})
        await self.store.put("blocklist", 8, {"name": "y", "url": "http://lists.test/y",
                                              "status": {"checked_at": "soon"}})
        await self.store.put("blocklist", 9, ["not", "a", "dict"])
        a = await self.add("/a")
        self.start_refresher()
        await self.checked()
        await self.engine.settled()
        self.assertEqual(self.lists.count("/a"), 1)
        self.assertEqual(self.decide("ads.example.com"), (BLOCK, f"blocklist:{a}"))
        self.clock.advance(25 * 3600)
        await self.checked()
        self.assertEqual(self.lists.count("/a"), 2)

    async def test_url_change_downloads_new_source_without_condition(self):
        self.lists.serve("/a", HOSTS, etag='"x"')
        self.lists.serve("/b", PLAIN, etag='"x"')
        list_id = await self.add("/a")
        await self.refresh(list_id)
        data = (await self.store.get("blocklist", list_id)).data
        await self.store.put("blocklist", list_id, dict(data, url="http://lists.test/b"))
        data = await self.refresh(list_id)
        self.assertEqual(self.lists.requests[-1], ("/b", None, None))
        self.assertEqual(data["content"]["domains"], 3)
        # The old contents are gone from the store.
        self.assertEqual(len(await self.store.db.run(
            lambda tx: tx.execute("SELECT sha256 FROM blobs"), write=False)), 1)


    async def test_stopped_refresher_writes_nothing(self):
        """A download still running when the node turns follower is dropped."""
        self.lists.serve("/slow", "", status="hang")
        list_id = await self.add("/slow")
        self.start_refresher()
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        revision = await self.store.revision()
        self.refresher.stopService()
        request = self.lists.hanging.pop()
        request.write(HOSTS.encode())
        request.finish()
        self.http.flush()
        await self.checked()
        self.assertEqual(await self.store.revision(), revision)
        self.assertIsNone((await self.store.get("blocklist", list_id)).data.get("content"))


    async def fires(self, d):
        """True if ``d`` fires soon without the Clock moving (the network is
        in memory: it completes in a few reactor turns when nothing waits)."""
        for _ in range(100):
            if d.called:
                return True
            await deferLater(reactor, 0.01)
        return False

    async def test_hanging_lists_do_not_hold_up_the_others(self):
        """Several list servers hang at once: every other list (and a refresh
        the user asks for) is downloaded at once, not a minute per hanging
        list later."""
        for path in ("/h1", "/h2", "/h3"):
            self.lists.serve(path, "", status="hang")
        self.lists.serve("/ok", HOSTS)
        hanging = [self.refresher.refresh(await self.add(p)) for p in ("/h1", "/h2", "/h3")]
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        ok = self.refresher.refresh(await self.add("/ok"))
        self.assertTrue(await self.fires(ok), "waited behind the hanging downloads")
        self.assertTrue((await ok)["status"]["ok"])
        self.clock.advance(60)
        for d in hanging:
            self.assertIn("within 60 seconds", (await d)["status"]["error"])

    async def test_refreshes_of_one_list_share_one_download(self):
        self.lists.serve("/l", "", status="hang")
        list_id = await self.add("/l")
        first, second = self.refresher.refresh(list_id), self.refresher.refresh(list_id)
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        request = self.lists.hanging.pop()
        request.write(HOSTS.encode())
        request.finish()
        self.http.flush()
        self.assertEqual(await first, await second)
        self.assertEqual(self.lists.count("/l"), 1)

    async def test_deleting_a_list_stops_its_download(self):
        self.start_refresher()
        await self.checked()
        self.lists.serve("/slow", "", status="hang")
        list_id = await self.add("/slow")  # downloaded at once
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        self.assertTrue(self.refresher.refreshing(list_id))
        running = self.refresher.refresh(list_id)
        await self.store.delete("blocklist", list_id)
        self.assertTrue(await self.fires(running), "the download went on for nothing")
        self.assertIsNone(await running)
        self.assertFalse(self.refresher.refreshing(list_id))
        self.assertEqual(await self.store.list_notifications(), [])

    async def test_changing_the_url_while_downloading_fetches_the_new_one(self):
        self.start_refresher()
        await self.checked()
        self.lists.serve("/slow", "", status="hang")
        self.lists.serve("/new", PLAIN)
        list_id = await self.add("/slow")
        while not self.lists.hanging:
            await deferLater(reactor, 0.01)
        running = self.refresher.refresh(list_id)
        data = (await self.store.get("blocklist", list_id)).data
        await self.store.put("blocklist", list_id, dict(data, url="http://lists.test/new"))
        self.assertTrue(await self.fires(running), "the old URL's download went on")
        data = await running
        self.assertEqual((data["status"]["ok"], data["content"]["url"], data["content"]["domains"]),
                         (True, "http://lists.test/new", 3))
        self.assertEqual(await self.store.list_notifications(), [])

    async def test_changing_the_url_while_parsing_fetches_the_new_one(self):
        from twisted.internet.defer import Deferred

        from sentinel.filtering.parsing import parse_and_encode

        parses = []

        def parse(body):
            d = Deferred()
            parses.append((d, body))
            return d

        self.refresher = BlocklistRefresher(self.store, self.clock, self.http, parse=parse)
        self.start_refresher()
        await self.checked()
        self.lists.serve("/old", HOSTS)
        self.lists.serve("/new", PLAIN)
        list_id = await self.add("/old")
        while not parses:
            await deferLater(reactor, 0.01)
        running = self.refresher.refresh(list_id)
        data = (await self.store.get("blocklist", list_id)).data
        await self.store.put("blocklist", list_id, dict(data, url="http://lists.test/new"))
        d, body = parses[0]
        d.callback(parse_and_encode(body))
        for _ in range(100):
            if len(parses) > 1:
                break
            await deferLater(reactor, 0.01)
        self.assertEqual(len(parses), 2, "the new URL was not downloaded")
        d, body = parses[1]
        d.callback(parse_and_encode(body))
        data = await running
        self.assertEqual((data["content"]["url"], data["content"]["domains"]),
                         ("http://lists.test/new", 3))

    async def test_gzip_lists_are_decoded_and_bombs_refused(self):
        import gzip

        self.lists.serve("/gz", gzip.compress(HOSTS.encode()),
                         headers={"Content-Encoding": "gzip"})
        self.lists.serve("/bomb", gzip.compress(b"\0" * (50 * 1024 * 1024)),
                         headers={"Content-Encoding": "gzip"})
        self.lists.serve("/br", b"whatever", headers={"Content-Encoding": "br"})
        data = await self.refresh(await self.add("/gz"))
        self.assertTrue(data["status"]["ok"], data["status"])
        data = await self.refresh(await self.add("/bomb"))
        self.assertIn("larger than the limit of 10000 bytes", data["status"]["error"])
        data = await self.refresh(await self.add("/br"))
        self.assertIn("unsupported Content-Encoding", data["status"]["error"])
        self.assertEqual(self.lists.requests[0][0], "/gz")


class GzipTests(TestCase):
    """Content-Encoding: gzip is decoded in bounded pieces; the cap counts
    decompressed bytes, so a tiny bomb cannot inflate past it."""

    def test_a_bomb_stops_at_the_cap_without_inflating_further(self):
        import gzip

        from sentinel.filtering.fetch import PIECE, Body, FetchError

        bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), 9)  # 200 MiB in ~200 KB
        body = Body(10_000, gzipped=True)
        self.assertRaises(FetchError, body.feed, bomb)
        self.assertLessEqual(body.size, 10_000 + PIECE)
        self.assertRaises(FetchError, body.feed, b"more")  # and nothing more is inflated

    def test_gzip_in_pieces_round_trips_and_damage_is_reported(self):
        import gzip

        from sentinel.filtering.fetch import Body, FetchError

        data = gzip.compress(b"".join(b"0.0.0.0 a%d.example.com\n" % i for i in range(50000)))
        body = Body(10 ** 8, gzipped=True)
        for i in range(0, len(data), 1000):
            body.feed(data[i:i + 1000])
        self.assertEqual(body.finish(), gzip.decompress(data))
        truncated = Body(10 ** 8, gzipped=True)
        truncated.feed(data[:-20])
        self.assertRaises(FetchError, truncated.finish)
        self.assertRaises(FetchError, Body(10 ** 8, gzipped=True).feed, b"not gzip at all")

    def test_every_gzip_member_is_read(self):
        """A gzip file may hold several members (concatenated files, pigz or
        bgzip output): all of them are the list, not just the first."""
        import gzip

        from sentinel.filtering.fetch import Body, FetchError

        parts = [b"0.0.0.0 a%d.example.com\n" % i * 1000 for i in range(3)]
        data = b"".join(gzip.compress(p) for p in parts) + b"\0" * 10
        for step in (len(data), 7, 1000):
            body = Body(10 ** 8, gzipped=True)
            for i in range(0, len(data), step):
                body.feed(data[i:i + step])
            self.assertEqual(body.finish(), b"".join(parts), step)
        bomb = gzip.compress(b"x") + gzip.compress(b"\0" * 1_000_000)
        self.assertRaises(FetchError, Body(10_000, gzipped=True).feed, bomb)



class RealClientGzipTests(TestCase):
    """The daemon's own client over real loopback HTTP: gzip is decoded by
    fetch (in bounded pieces), not inflated whole by the HTTP client."""

    async def fetch(self, path, **kw):
        from twisted.web.server import Site

        from sentinel.filtering import fetch

        port = reactor.listenTCP(0, Site(self.lists), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}{path}"
        return await fetch.fetch(fetch.http_client(reactor), reactor, url, **kw)

    async def test_gzip_list_and_bomb(self):
        import gzip

        from sentinel.filtering.fetch import FetchError

        self.lists = ListResource()
        self.lists.serve("/gz", gzip.compress(HOSTS.encode()),
                         headers={"Content-Encoding": "gzip"})
        self.lists.serve("/bomb", gzip.compress(b"\0" * (100 * 1024 * 1024)),
                         headers={"Content-Encoding": "gzip"})
        got = await self.fetch("/gz")
        self.assertEqual(got.body, HOSTS.encode())
        from twisted.internet.defer import ensureDeferred

        failure = await self.assertFailure(
            ensureDeferred(self.fetch("/bomb", max_bytes=100_000)), FetchError)
        self.assertIn("larger than the limit of 100000 bytes", str(failure))
