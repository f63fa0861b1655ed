"""
Downloading a blocklist: one HTTP(S) GET with a time limit, a size cap, a
limited number of redirects (followed here, so each hop is checked) and a
conditional request (ETag / Last-Modified) when we already have contents.

``http`` is a treq ``HTTPClient`` (or ``StubTreq`` in tests).
"""

from urllib.parse import urljoin

import attr
import treq
from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.web.client import ContentDecoderAgent, GzipDecoder
from twisted.web.client import Agent
from twisted.web.client import ResponseFailed

from sentinel import __version__
from sentinel.quiet import QuietHTTPConnectionPool

REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 5


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
    """The treq client blocklist downloads use (gzip accepted)."""
    pool = QuietHTTPConnectionPool(reactor, persistent=False)
    agent = ContentDecoderAgent(Agent(reactor, connectTimeout=15, pool=pool),
                                [(b"gzip", GzipDecoder)])
    return treq.client.HTTPClient(agent)


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
        if failure.check(ResponseFailed):
            reasons = getattr(failure.value, "reasons", None) or []
            detail = "; ".join(r.getErrorMessage() for r in reasons) or "connection failed"
            raise FetchError(f"download failed: {detail}")
        raise FetchError(f"download failed: {failure.getErrorMessage() or failure.type.__name__}")

    return d.addBoth(stop_timer).addErrback(explain)


async def _fetch(http, url, etag, last_modified, max_bytes, max_redirects):
    headers = {b"User-Agent": [f"Sentinel/{__version__}".encode()]}
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
            await _discard(response)
            if not location:
                raise FetchError(f"HTTP {code} redirect without a Location")
            current = urljoin(current, location[0].decode("latin-1"))
            continue
        if code == 304 and (etag or last_modified):
            await _discard(response)
            return Fetched(False, url=current)
        if code != 200:
            await _discard(response)
            raise FetchError(f"HTTP {code} from {current}")
        body = await _read(response, max_bytes)
        return Fetched(
            True, body,
            _header(response, b"etag"), _header(response, b"last-modified"), current,
        )
    raise FetchError(f"more than {max_redirects} redirects")


def _check_scheme(url):
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError(f"refusing to follow {url!r}: only http and https are allowed")


def _header(response, name):
    values = response.headers.getRawHeaders(name)
    return values[-1].decode("latin-1") if values else ""


async def _discard(response):
    try:
        await _read(response, 1024 * 1024)
    except Exception:
        pass


async def _read(response, max_bytes):
    length = response.length
    if isinstance(length, int) and length > max_bytes:
        raise FetchError(f"the list is larger than the limit of {max_bytes} bytes")
    parts, size = [], 0

    def collect(data):
        nonlocal size
        size += len(data)
        if size > max_bytes:
            raise FetchError(f"the list is larger than the limit of {max_bytes} bytes")
        parts.append(data)

    await treq.collect(response, collect)
    return b"".join(parts)
