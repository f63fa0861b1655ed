"""
Serves the web UI: the files under ``static/`` (package data, committed
as-is: no build step, no CDN) and ``index.html`` for every UI route, so
that ``/cluster`` or ``/query-log`` can be bookmarked and reloaded.

A path whose last segment has a dot names a file: it is served if it
exists and is 404 otherwise (a missing script must not come back as HTML).
Any other path is a UI route and gets ``index.html``; the client-side
router decides what to show (including its own "page not found").

Every answer carries strict security headers; the Content-Security-Policy
allows scripts, styles and connections to this origin only, so nothing
injected into the page could run or phone home.
"""

import hashlib
import os

from twisted.python.filepath import FilePath, InsecurePath
from twisted.web import http
from twisted.web.resource import Resource

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}

CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".json": b"application/json; charset=utf-8",
    ".webmanifest": b"application/manifest+json",
    ".txt": b"text/plain; charset=utf-8",
    ".woff2": b"font/woff2",
}


class WebUI(Resource):
    """The UI resource; ``static_dir`` defaults to the shipped assets."""

    isLeaf = True

    def __init__(self, static_dir=STATIC_DIR):
        super().__init__()
        self._root = FilePath(static_dir)
        self._cache = {}  # path -> (mtime, size, body, etag)

    def render(self, request):
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _plain(request, http.NOT_ALLOWED, "Method not allowed.")
        if request.postpath[:1] in ([b"api"], [b"metrics"]):
            # Never answer an API path with the app (a client would parse HTML).
            request.setResponseCode(http.NOT_FOUND)
            request.setHeader(b"content-type", b"application/json; charset=utf-8")
            return b'{"error":"NOT_FOUND","message":"No such API endpoint."}'
        target = self._resolve(request.postpath)
        if target is None:
            return _plain(request, http.NOT_FOUND, "No such file.")
        return self._serve(request, target)

    def _resolve(self, postpath):
        """The file to serve for a request path, or None for 404."""
        try:
            segments = [s.decode("utf-8") for s in postpath]
        except UnicodeDecodeError:
            return None
        while segments and segments[-1] == "":
            segments.pop()  # "/" and trailing slashes
        if not segments:
            return self._root.child("index.html")
        if any(s in ("", ".", "..") or s.startswith(".") or "\\" in s or "\0" in s
               for s in segments):
            return None
        try:
            target = self._root.descendant(segments)
        except InsecurePath:
            return None
        if "." in segments[-1]:
            return target if target.isfile() else None
        if target.isfile():
            return target
        return self._root.child("index.html")  # a UI route

    def _serve(self, request, target):
        try:
            body, etag = self._read(target)
        except OSError:
            return _plain(request, http.NOT_FOUND, "No such file.")
        ext = os.path.splitext(target.basename())[1].lower()
        request.setHeader(b"content-type", CONTENT_TYPES.get(ext, b"application/octet-stream"))
        # Always revalidate: files change on upgrade and have no hashed names.
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"etag", etag)
        if etag in _if_none_match(request):
            request.setResponseCode(http.NOT_MODIFIED)
            return b""
        if request.method == b"HEAD":
            request.setHeader(b"content-length", str(len(body)).encode())
            return b""
        return body

    def _read(self, target):
        st = os.stat(target.path)
        cached = self._cache.get(target.path)
        if cached and cached[0] == st.st_mtime_ns and cached[1] == st.st_size:
            return cached[2], cached[3]
        body = target.getContent()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        self._cache[target.path] = (st.st_mtime_ns, st.st_size, body, etag)
        return body, etag


def _if_none_match(request):
    header = request.getHeader(b"if-none-match") or b""
    if isinstance(header, str):
        header = header.encode()
    return {t.strip().removeprefix(b"W/") for t in header.split(b",") if t.strip()}


def _plain(request, status, message):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return message.encode() + b"\n"
