"""
Blocklist refresh (leader or standalone only; followers receive contents
by sync).  Refreshes every list at start, each list again when it is due
(``refresh_hours``), a new list or changed URL at once, and on request.

A successful download is parsed in a child process (L{parsing}), stored as a blob
(normalized, compressed; see L{sentinel.filtering.listformat}) and
referenced from the blocklist entity together with its status, in one
transaction.  A failure records the error, keeps the last good contents
and adds a notification.
"""

import time

import attr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, DeferredSemaphore, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from sentinel.filtering import model, parsing, settings
from sentinel.filtering.fetch import FetchError, fetch
from sentinel.filtering.listcache import trim_memory
from sentinel.filtering.listformat import looks_like_html

log = Logger()
DOWNLOADS = 4  # downloads at a time


class BlocklistRefresher(Service):
    """
    parse: body -> Deferred of (Summary, blob); the daemon passes
    L{parsing.in_child}, unit tests the default L{parsing.inline}.
    """

    def __init__(self, store, clock, http, ready=None, parse=parsing.inline,
                 check_interval=60.0, fetch_options=None):
        self.store = store
        self.clock = clock
        self.http = http
        self._ready = ready or (lambda: succeed(None))
        self._parse = parse
        self.check_interval = check_interval
        self.fetch_options = dict(fetch_options or {})
        # A few downloads at a time (one hanging server must not hold up the
        # rest), each holding its slot until its body is parsed (memory: at
        # most DOWNLOADS bodies), and one parse at a time.
        self._slots = DeferredSemaphore(DOWNLOADS)
        self._parsing = DeferredLock()
        self._inflight = {}  # list id -> [waiters of the running refresh]
        self._downloads = {}  # list id -> (url, Deferred of its running fetch)
        self._superseded = set()  # list ids whose running refresh a change overtook
        self._loop = None
        self._unsubscribe = None
        self._started = False
        self._stopped = False
        self.checking = succeed(None)  # the latest refresh_due (tests wait on it)

    def startService(self):
        super().startService()
        self._stopped = False
        self._unsubscribe = self.store.subscribe(self._changed)

        def ready(_):
            if not self.running:
                return
            self._started = True
            first = [True]

            def tick():
                force, first[0] = first[0], False
                return self.refresh_due(force=force)

            self._loop = LoopingCall(tick)
            self._loop.clock = self.clock
            self._loop.start(self.check_interval, now=True).addErrback(
                lambda f: log.failure("blocklist refresh loop stopped", f))

        self._ready().addCallback(ready)

    def stopService(self):
        """Stop; downloads still running finish but write nothing (a leader-only
        service: this node may be a follower now, whose configuration comes
        from the leader alone)."""
        super().stopService()
        self._stopped = True
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _changed(self, revision, entities):
        for e in entities:
            if e.kind == model.BLOCKLIST and e.key.isdigit():
                self._stop_stale_download(int(e.key), e.data)
        if not self._started or not self.running:
            return
        for e in entities:
            if e.kind == model.BLOCKLIST and isinstance(e.data, dict) and _needs_download(e.data):
                self.refresh(int(e.key))

    def _stop_stale_download(self, list_id, data):
        """The list was deleted or its URL changed: its running refresh is for
        nothing; cancel its download (a new URL is then fetched in its place,
        also when the change comes while the old one is parsed or stored)."""
        running = self._downloads.get(list_id)
        if running is None:
            return
        url, d = running
        if not isinstance(data, dict) or data.get("url") != url:
            self._superseded.add(list_id)
            d.cancel()  # (nothing once downloaded: then what it wrote is refused)

    async def _due(self, force):
        lists = await self.store.list(model.BLOCKLIST)
        clients = await self.store.list(model.CLIENT)
        opts = settings.filtering((await self.store.get("setting", settings.FILTERING) or
                                   _NoEntity).data)
        used = _referenced(clients)
        now = self.clock.seconds()
        due = []
        for e in lists:
            data = e.data
            if not isinstance(data, dict) or not e.key.isdigit():
                log.warn("blocklist {key} is damaged; not downloaded", key=e.key)
                continue  # (arrived unvalidated, by sync or a restore)
            list_id = int(e.key)
            if data.get("mode") == "disabled" and list_id not in used:
                continue
            checked = _status(data).get("checked_at")
            if not isinstance(checked, (int, float)):
                checked = 0  # damaged: download it (which writes a good status)
            if force or _needs_download(data) or now - checked >= opts["refresh_hours"] * 3600:
                due.append(list_id)
        return due

    def refresh_due(self, force=False):
        """Refresh every list that is due (all of them with force)."""
        d = ensureDeferred(self._due(force))

        def go(ids):
            return _gather([self.refresh(i) for i in ids])

        d.addCallback(go)
        d.addErrback(lambda f: log.warn("blocklist refresh failed: {e}",
                                        e=getattr(f.value, "subFailure", f).getErrorMessage()))
        self.checking = Deferred()
        d.addBoth(lambda _: self.checking.callback(None))
        return d

    def refreshing(self, list_id):
        """True while a download of this list is queued or running."""
        return list_id in self._inflight

    def refresh(self, list_id):
        """Refresh one list now; Deferred of its data afterwards (or None if gone)."""
        waiter = Deferred()
        waiters = self._inflight.get(list_id)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        waiters = self._inflight[list_id] = [waiter]

        def done(result):
            del self._inflight[list_id]
            for w in waiters:
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(result)

        self._slots.run(lambda: ensureDeferred(self._refresh(list_id))).addBoth(done)
        return waiter

    async def _refresh(self, list_id):
        """L{_refresh_once}, again while a change of the list's URL overtook it."""
        while True:
            result = await self._refresh_once(list_id)
            if list_id not in self._superseded:
                return result
            self._superseded.discard(list_id)
            if self._stopped:
                return None

    async def _refresh_once(self, list_id):
        entity = await self.store.get(model.BLOCKLIST, list_id)
        if entity is None or not isinstance(entity.data, dict):
            return None
        data = entity.data
        url = data.get("url", "")
        content = data.get("content") if isinstance(data.get("content"), dict) else {}
        same_source = content.get("url") == url
        started = time.perf_counter()
        running = fetch(
            self.http, self.clock, url,
            etag=content.get("etag", "") if same_source else "",
            last_modified=content.get("last_modified", "") if same_source else "",
            **self.fetch_options,
        )
        self._downloads[list_id] = (url, running)
        try:
            return await self._finish(list_id, url, running, started)
        finally:
            self._downloads.pop(list_id, None)

    async def _finish(self, list_id, url, running, started):
        try:
            fetched = await running
            if not fetched.modified:
                return await self._record(list_id, url, None, None, 0, fetched)
            if looks_like_html(fetched.body):
                raise FetchError("the server sent a web page (HTML), not a list")
            parsed, blob = await self._parsing.run(self._parse, fetched.body)
            if not parsed.domains and not parsed.allows:
                raise FetchError(
                    f"no domains found ({parsed.skipped} lines skipped); is this a blocklist?")
        except (FetchError, parsing.ParseError) as e:
            return await self._failed(list_id, url, str(e))  # (nothing if it changed)
        log.info("blocklist {id} downloaded: {n} domains, {s} lines skipped ({t:.1f}s)",
                 id=list_id, n=parsed.domains, s=parsed.skipped,
                 t=time.perf_counter() - started)
        size = len(fetched.body)
        fetched = attr.evolve(fetched, body=b"")  # drop the download before storing
        result = await self._record(list_id, url, parsed, blob, size, fetched)
        del blob
        deferToThread(trim_memory)  # the download's buffers back to the OS
        return result

    def _record(self, list_id, url, parsed, blob, size, fetched):
        now = self.clock.seconds()
        if self._stopped:
            return succeed(None)  # e.g. this node became a follower meanwhile

        async def tx(ctx):
            entity = await ctx.get(model.BLOCKLIST, list_id)
            if entity is None or entity.data.get("url") != url:
                return entity.data if entity else None  # changed meanwhile
            data = dict(entity.data)
            old = data.get("content") if isinstance(data.get("content"), dict) else None
            if parsed is not None:
                sha = await ctx.put_blob(blob)
                content = {
                    "sha256": sha, "domains": parsed.domains, "allows": parsed.allows,
                    "skipped": parsed.skipped, "skipped_examples": list(parsed.examples),
                    "url": url, "etag": fetched.etag, "last_modified": fetched.last_modified,
                    "updated_at": now if not old or old.get("sha256") != sha
                    else old.get("updated_at", now),
                    "bytes": size,
                }
                data["content"] = content
                if old and old.get("sha256") != sha:
                    await release_blob(ctx, old.get("sha256"), list_id)
            data["status"] = {"checked_at": now, "ok": True, "error": ""}
            return (await ctx.put(model.BLOCKLIST, list_id, data)).data

        return self.store.transact(tx)

    async def _failed(self, list_id, url, error):
        now = self.clock.seconds()
        if self._stopped:
            return None

        async def tx(ctx):
            entity = await ctx.get(model.BLOCKLIST, list_id)
            if entity is None or entity.data.get("url") != url:
                return None, False
            data = dict(entity.data)
            previous = _status(data)
            data["status"] = {"checked_at": now, "ok": False, "error": error}
            put = await ctx.put(model.BLOCKLIST, list_id, data)
            return put.data, previous.get("error") != error
        result, new_error = await self.store.transact(tx)
        if result is not None:
            log.warn("blocklist {id} refresh failed: {e}", id=list_id, e=error)
            if new_error:
                name = result.get("name", list_id)
                kept = "the previous contents stay in use" if result.get("content") \
                    else "it has no contents yet"
                await self.store.add_notification(
                    "warning", "blocklist",
                    f"Blocklist '{name}' could not be refreshed: {error} ({kept}).")
        return result


async def release_blob(ctx, sha, list_id):
    """Delete a list's old contents unless another list still uses them."""
    if not sha:
        return
    for other in await ctx.list(model.BLOCKLIST):
        content = other.data.get("content") if isinstance(other.data, dict) else None
        if int(other.key) != list_id and isinstance(content, dict) \
                and content.get("sha256") == sha:
            return
    await ctx.delete_blobs([sha])


def _status(data):
    status = data.get("status")
    return status if isinstance(status, dict) else {}


def _needs_download(data):
    content = data.get("content")
    return not isinstance(content, dict) or content.get("url") != data.get("url")


def _referenced(clients):
    used = set()
    for c in clients:
        data = c.data if isinstance(c.data, dict) else {}
        if not data.get("use_global_blocklists", True):
            used.update(i for i in data.get("blocklists") or () if isinstance(i, int))
        for s in data.get("schedules") or ():
            if isinstance(s, dict):
                used.update(i for i in s.get("blocklists") or () if isinstance(i, int))
    return used


class _NoEntity:
    data = None


def _gather(ds):
    from twisted.internet.defer import gatherResults

    return gatherResults(ds, consumeErrors=True)
