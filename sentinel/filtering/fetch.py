"""
Downloading a blocklist: one HTTP(S) GET with a time limit, a size cap, a
limited number of redirects (followed here, so each hop is checked) and a
conditional request (ETag / Last-Modified) when we already have contents.

gzip answers (``Content-Encoding: gzip``) are decompressed here, at most
L{PIECE} bytes at a time, and the size cap applies to the decompressed
bytes: a small "decompression bomb" costs no more memory than the cap
(Twisted's own decoder inflates each received chunk at once, up to ~1000
times its size).  Other content encodings are refused.

``http`` is a treq ``HTTPClient`` (or ``StubTreq`` in tests).
"""

import zlib
from urllib.parse import urljoin

import attr
from hyperlink import EncodedURL
from OpenSSL import SSL
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from sentinel import __version__, httpbody
from sentinel.quiet import QuietHTTPConnectionPool

REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5
PIECE = 1024 * 1024  # most bytes decompressed at once


class FetchError(Exception):
    """The download failed; the message is shown to the user."""


@attr.s(frozen=True, auto_attribs=True)
class Fetched:
    modified: bool  # False: 304, keep what we have
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""
    url: str = ""  # the final URL after redirects


def http_client(reactor):
    """The client blocklist downloads use (gzip is decoded by L{fetch})."""
    pool = QuietHTTPConnectionPool(reactor, persistent=False)
    return RawClient(Agent(reactor, connectTimeout=15, pool=pool))


class RawClient:
    """
    ``get()`` like treq's, but the answer is left as it came: treq's client
    always wraps Twisted's gzip decoder, which inflates every received chunk
    at once before any size check can see it.
    """

    def __init__(self, agent):
        self._agent = agent

    def get(self, url, headers=None, allow_redirects=False):
        uri = EncodedURL.from_text(url).to_uri().to_text().encode("ascii")
        return self._agent.request(b"GET", uri, Headers(dict(headers or {})), None)


def fetch(http, clock, url, etag="", last_modified="", timeout=DEFAULT_TIMEOUT,
          max_bytes=DEFAULT_MAX_BYTES, max_redirects=DEFAULT_MAX_REDIRECTS):
    """A Deferred firing with L{Fetched} or failing with L{FetchError}."""
    d = ensureDeferred(_fetch(http, url, etag, last_modified, max_bytes, max_redirects))
    timed_out = []

    def expire():
        timed_out.append(True)
        d.cancel()

    timer = clock.callLater(timeout, expire)

    def stop_timer(result):
        if timer.active():
            timer.cancel()
        return result

    def explain(failure):
        if timed_out:
            raise FetchError(f"no complete answer within {timeout:g} seconds")
        if failure.check(FetchError):
            return failure
        if failure.check(CancelledError):
            raise FetchError("download cancelled")
        reasons = getattr(failure.value, "reasons", None) or [failure]
        detail = "; ".join(_reason(r) for r in reasons) or "connection failed"
        raise FetchError(f"download failed: {_short(detail, 300)}")

    return d.addBoth(stop_timer).addErrback(explain)


async def _fetch(http, url, etag, last_modified, max_bytes, max_redirects):
    headers = {b"User-Agent": [f"Sentinel/{__version__}".encode()],
               b"Accept-Encoding": [b"gzip"]}
    if etag:
        headers[b"If-None-Match"] = [etag.encode("latin-1", "replace")]
    if last_modified:
        headers[b"If-Modified-Since"] = [last_modified.encode("latin-1", "replace")]
    current = url
    for _ in range(max_redirects + 1):
        _check_scheme(current)
        response = await http.get(current, headers=headers, allow_redirects=False)
        code = response.code
        if code in REDIRECTS:
            location = response.headers.getRawHeaders(b"location")
            _discard(response)
            if not location:
                raise FetchError(f"HTTP {code} redirect without a Location")
            current = urljoin(current, location[0].decode("latin-1"))
            continue
        if code == 304 and (etag or last_modified):
            _discard(response)
            return Fetched(False, url=current)
        if code != 200:
            _discard(response)
            raise FetchError(f"HTTP {code} from {_short(current)}")
        body = await _read(response, max_bytes)
        return Fetched(
            True, body,
            _header(response, b"etag"), _header(response, b"last-modified"), current,
        )
    raise FetchError(f"more than {max_redirects} redirects")


def _short(text, limit=200):
    """Server-supplied text (a redirect's URL, a malformed status line) as
    it goes into the list's status and a notification: at most ``limit``
    characters."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _reason(failure):
    """One failure as a short text; TLS errors as their OpenSSL reasons
    (``[('SSL routines', '', 'certificate verify failed')]`` otherwise)."""
    if failure.check(SSL.Error):
        args = failure.value.args[0] if failure.value.args else None
        if isinstance(args, list):
            texts = [str(a[-1]) for a in args if isinstance(a, tuple) and a and a[-1]]
            if texts:
                return "TLS error: " + ", ".join(texts)
        return "TLS error"
    return failure.getErrorMessage() or failure.type.__name__


def _check_scheme(url):
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError(f"refusing to follow {_short(url)!r}: only http and https are allowed")


def _header(response, name):
    values = response.headers.getRawHeaders(name)
    return values[-1].decode("latin-1") if values else ""


def _discard(response):
    """Close the answer's connection without reading its body (connections
    are not reused): a redirect or error body that trickles must not hold
    the download until the time limit, hiding the HTTP status."""
    reading = httpbody.stream(response, lambda data: None)
    reading.addErrback(lambda _: None)
    reading.cancel()


async def _read(response, max_bytes):
    length = response.length
    if isinstance(length, int) and length > max_bytes:
        raise FetchError(f"the list is larger than the limit of {max_bytes} bytes")
    encodings = [e.strip().lower() for v in response.headers.getRawHeaders(
        b"content-encoding", []) for e in v.split(b",") if e.strip()]
    encodings = [e for e in encodings if e != b"identity"]
    if encodings not in ([], [b"gzip"], [b"x-gzip"]):
        raise FetchError("unsupported Content-Encoding "
                         f"{b', '.join(encodings).decode('latin-1')[:50]!r}")
    body = Body(max_bytes, gzipped=bool(encodings))
    await httpbody.stream(response, body.feed)
    return body.finish()


class Body:
    """
    Collects a download, decompressing gzip in pieces of at most L{PIECE}
    bytes; FetchError as soon as more than ``max_bytes`` (decompressed)
    arrive, and nothing more is decompressed after that.
    """

    def __init__(self, max_bytes, gzipped=False):
        self.max_bytes = max_bytes
        self.size = 0
        self._parts = []
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        self._failed = None

    def feed(self, data):
        if self._failed is not None:
            raise self._failed
        if self._inflate is None:
            self._add(data)
            return
        while True:
            try:
                out = self._inflate.decompress(data, PIECE)
            except zlib.error:
                self._failed = FetchError("the gzip-compressed answer is damaged")
                raise self._failed from None
            self._add(out)
            data = self._inflate.unconsumed_tail
            if self._inflate.eof and self._inflate.unused_data.strip(b"\0"):
                # Another gzip member (RFC 1952: a file is a series of them;
                # zeros after the last are padding): it was dropped unread.
                data = self._inflate.unused_data
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                continue
            if not data and len(out) < PIECE:
                return

    def _add(self, data):
        self.size += len(data)
        if self.size > self.max_bytes:
            self._failed = FetchError(
                f"the list is larger than the limit of {self.max_bytes} bytes")
            raise self._failed
        if data:
            self._parts.append(data)

    def finish(self):
        if self._inflate is not None:
            if not self._inflate.eof:
                raise FetchError("the gzip-compressed answer is incomplete")
        return b"".join(self._parts)
