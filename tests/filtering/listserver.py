"""
A tiny HTTP resource serving blocklists for tests: in memory through
StubTreq, or on a real loopback port for daemon tests.  Honours
If-None-Match, counts requests, can redirect, fail, hang, or send the start
of a body and then nothing (a slow drip).
"""

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET


class ListResource(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.files = {}  # path -> (status, headers dict, body bytes)
        self.requests = []  # (path, headers of interest)
        self.hanging = []

    def serve(self, path, body, status=200, etag=None, headers=None, drip=False):
        """drip: send the status, headers and ``body``, then nothing more."""
        h = dict(headers or {})
        if etag:
            h["ETag"] = etag
        if drip:
            h["X-Drip"] = str(status)
            status = "drip"
        self.files[path] = (status, h, body if isinstance(body, bytes) else body.encode())

    def render(self, request):
        path = request.path.decode()
        self.requests.append((path, request.getHeader("if-none-match"),
                              request.getHeader("if-modified-since")))
        if path not in self.files:
            request.setResponseCode(404)
            return b"not found"
        status, headers, body = self.files[path]
        if status == "hang":
            self.hanging.append(request)
            return NOT_DONE_YET
        if status == "drip":  # headers and the start of the body, then nothing more
            for k, v in headers.items():
                request.setHeader(k, v)
            request.setResponseCode(int(headers.get("X-Drip", 200)))
            request.write(body)
            self.hanging.append(request)
            return NOT_DONE_YET
        for k, v in headers.items():
            request.setHeader(k, v)
        etag = headers.get("ETag")
        if etag and request.getHeader("if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        request.setResponseCode(status)
        return body

    def count(self, path):
        return sum(1 for p, _, _ in self.requests if p == path)
