"""
Applying DNS settings to the running server, live: the stored
``setting``/``dns`` entity is read at start (retrying while the store is
not ready) and again whenever the store reports that it changed.

Only what changed is touched: new upstreams rebuild the upstream
transports and flush the cache (answers came from the old upstreams);
cache limits, access list, rate limit and timeouts are swapped in place;
switching which LAN-only names are forwarded also flushes the cache.
The on-link networks for the access list (``local_networks``) are
followed by ``self.onlink`` (L{sentinel.dns.onlink}).
Invalid stored data (e.g. written by a newer version) is logged and the
current settings stay: DNS never stops over bad settings.

Loop protection: an upstream that is this server (one of its DNS
addresses — any local address when listening on all of them — on the DNS
port) is never used; the engine also refuses queries that arrive from
our own upstream sockets (a VIP or port forward that leads back here).
"""

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger

from sentinel.dns.doh import DohTransport
from sentinel.dns.forwarder import Upstream
from sentinel.dns.listeners import is_local_address
from sentinel.dns.onlink import OnLinkWatcher
from sentinel.dns.settings import DEFAULTS, KEY, KIND, SettingsError, from_data
from sentinel.dns.stream import StreamTransport
from sentinel.dns.udp import UdpTransport
from sentinel.dns.upstreamspec import parse_upstream

log = Logger()
RETRY = 5.0


class DnsRuntime:
    def __init__(self, reactor, engine, tcp_factory, base_upstreams, dns_port,
                 dns_addresses=(), trust_root=None):
        self.reactor = reactor
        self.engine = engine
        self.tcp_factory = tcp_factory
        self.base_upstreams = tuple(base_upstreams)
        self.dns_port = dns_port
        self.dns_addresses = tuple(dns_addresses)
        self.trust_root = trust_root
        self.settings = None
        # The networks attached to this node, for the access list (started
        # and stopped by the DNS service).
        self.onlink = OnLinkWatcher(reactor, engine.access.set_local)
        self.effective_upstreams = ()
        self.rejected_upstreams = {}  # spec -> why it is not used
        self.lan_upstreams = ()  # for LAN-only names (sentinel.dns.lan)
        self._unsubscribe = None
        self._retry = None

    # -- settings ------------------------------------------------------------

    def apply(self, settings):
        old, self.settings = self.settings, settings
        engine = self.engine
        upstreams = settings.upstreams or self.base_upstreams
        if upstreams != self.effective_upstreams:
            self._set_upstreams(upstreams)
            if old is not None:
                engine.cache.flush()
                log.info("DNS upstreams changed to {ups}; cache flushed", ups=list(upstreams))
        if settings.lan_upstreams != self.lan_upstreams:
            self.lan_upstreams = settings.lan_upstreams
            engine.lan_forwarder.set_upstreams(self._handles(settings.lan_upstreams))
            if old is not None:
                engine.cache.flush()
                log.info("DNS upstreams for LAN-only names changed to {ups}; cache flushed",
                         ups=list(settings.lan_upstreams))
        engine.cache.configure(settings.cache_size, settings.cache_min_ttl,
                               settings.cache_max_ttl, settings.cache_max_negative_ttl,
                               settings.serve_stale)
        if old is None or (old.allowed_networks, old.local_networks, old.rate_limit_qps,
                           old.rate_limit_burst, old.rate_limit_exempt) != (
                settings.allowed_networks, settings.local_networks, settings.rate_limit_qps,
                settings.rate_limit_burst, settings.rate_limit_exempt):
            engine.access.configure(settings.allowed_networks, settings.rate_limit_qps,
                                    settings.rate_limit_burst, settings.rate_limit_exempt,
                                    local_enabled=settings.local_networks)
        names = engine.lan
        lan_before = (names.forward_private_reverse, names.forward_single_label)
        names.forward_private_reverse = settings.forward_private_reverse
        names.forward_single_label = settings.forward_single_label
        if old is not None and lan_before != (names.forward_private_reverse,
                                              names.forward_single_label):
            engine.cache.flush()  # forwarded answers for names now answered here
        engine.forwarder.timeout = settings.upstream_timeout_ms / 1000.0
        engine.lan_forwarder.timeout = engine.forwarder.timeout
        if self.tcp_factory is not None:
            self.tcp_factory.idle_timeout = settings.tcp_idle_timeout
            self.tcp_factory.max_connections = settings.tcp_max_connections
            self.tcp_factory.max_per_client = settings.tcp_max_connections_per_client
            self.tcp_factory.exempt = engine.access.exempt_ip

    def _set_upstreams(self, texts):
        self.effective_upstreams = tuple(texts)
        handles = self._handles(texts)
        if not handles:
            log.error("no usable DNS upstream: queries that miss the cache get SERVFAIL")
        self.engine.forwarder.set_upstreams(handles)

    def _handles(self, texts):
        """Upstream handles for specs (the unusable ones go to rejected_upstreams)."""
        for text in texts:
            self.rejected_upstreams.pop(text, None)
        handles = []
        for text in texts:
            try:
                spec = parse_upstream(text)
            except ValueError as e:  # validated before; stay safe anyway
                self.rejected_upstreams[text] = str(e)
                continue
            if self.is_self(spec):
                why = "it is this server (forwarding loop)"
                self.rejected_upstreams[text] = why
                log.error("upstream {up} not used: {why}", up=text, why=why)
                continue
            handles.append(self.build(spec))
        return handles

    def is_self(self, spec):
        if spec.port != self.dns_port or spec.scheme not in ("udp", "tcp"):
            return False
        if self.dns_addresses:
            return spec.host in self.dns_addresses
        return is_local_address(spec.host)

    def build(self, spec):
        stats = self.engine.stats.upstream(spec.text)
        reactor = self.reactor
        if spec.scheme == "udp":
            transport = UdpTransport(reactor, spec.host, spec.port, stats,
                                     ports=self.engine.loop_ports)
            tcp = StreamTransport(reactor, spec.host, spec.port, stats=stats)
            return Upstream(spec, transport, stats, tcp=tcp)
        if spec.scheme == "tcp":
            return Upstream(spec, StreamTransport(reactor, spec.host, spec.port, stats=stats),
                            stats)
        tls = optionsForClientTLS(spec.server_name or spec.host, trustRoot=self.trust_root)
        if spec.scheme == "tls":
            return Upstream(spec, StreamTransport(reactor, spec.host, spec.port, tls=tls,
                                                  stats=stats), stats)
        return Upstream(spec, DohTransport(reactor, spec, tls, stats), stats)

    # -- the store -----------------------------------------------------------

    def start(self, store=None):
        if self.settings is None:
            self.apply(DEFAULTS)
        self.engine.forwarder.start()
        self.engine.lan_forwarder.start()
        if store is not None:
            self.store = store
            self._unsubscribe = store.subscribe(self._changed)
            self._load()

    def stop(self):
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        return gatherResults([self.engine.forwarder.stop(), self.engine.lan_forwarder.stop()])

    def _changed(self, revision, entities):
        for entity in entities:
            if entity.kind == KIND and entity.key == KEY:
                self._use(entity.data)

    def _load(self):
        self._retry = None
        d = ensureDeferred(self._read())
        d.addErrback(self._load_failed)

    async def _read(self):
        entity = await self.store.get(KIND, KEY)
        self._use(entity.data if entity is not None else None)

    def _load_failed(self, failure):
        log.debug("DNS settings not readable yet ({e}); retrying", e=failure.getErrorMessage())
        self._retry = self.reactor.callLater(RETRY, self._load)

    def _use(self, data):
        try:
            settings = from_data(data)
        except SettingsError as e:
            log.error("stored DNS settings are invalid ({e}); keeping the current ones", e=e)
            return
        if settings != self.settings:
            self.apply(settings)
