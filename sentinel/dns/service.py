"""
The DNS service: puts the engine, the listeners, the runtime settings and
the self-probe together and runs them with the daemon.
"""

from twisted.application.service import MultiService
from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.logger import Logger

from sentinel.dns.clocksteps import ClockSteps
from sentinel.dns.engine import Engine
from sentinel.dns.fastpath import FastPath
from sentinel.dns.listeners import listen_dns, probe_target
from sentinel.dns.probe import DnsProbe, ProbeSocket
from sentinel.dns.runtime import DnsRuntime
from sentinel.dns.settings import DEFAULTS
from sentinel.dns.stats import DnsStats
from sentinel.dns.tcpserver import DnsTcpFactory
from sentinel.services import ListeningService

log = Logger()


# Garbage collection: a DNS server allocates a few short-lived objects per
# query and keeps many long-lived ones (cache entries, policy).  With the
# default thresholds (700, 10, 10) the collector runs constantly and its
# older-generation passes rescan the whole cache: measured on the
# forwarding path, ~3 us per query (a third of the throughput) and pauses
# of tens of ms.  Objects alive at start-up are frozen (never rescanned),
# young collections run every 20000 allocations (pauses of ~1-2 ms) and
# older ones rarely.
GC_THRESHOLDS = (20_000, 50, 1000)
# The store's threads (SQLite writes of the query log) hold the GIL for up
# to the switch interval (5 ms by default) while a query waits on the
# reactor thread; 1 ms keeps that out of the latency tail.
SWITCH_INTERVAL = 0.001


def tune_runtime():
    import gc
    import sys

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)


class DnsService(MultiService):
    def __init__(self, reactor, config, policy_source, querylog, store=None,
                 store_ready=None, trust_root=None):
        super().__init__()
        self.reactor = reactor
        self.config = config
        self.store = store
        self.store_ready = store_ready  # callable() -> Deferred, or None
        self.stats = DnsStats()
        self.engine = Engine(reactor, policy_source, querylog, stats=self.stats)
        self.fast = FastPath(self.engine)
        self.tcp_factory = DnsTcpFactory(self.fast, self.stats)
        self.stats.tcp = self.tcp_factory
        self.runtime = DnsRuntime(
            reactor, self.engine, self.tcp_factory, config.upstreams, config.dns_port,
            config.dns_interfaces, trust_root=trust_root)
        self.runtime.apply(DEFAULTS)
        self.listening = ListeningService(
            "DNS", config.dns_port, "udp/tcp",
            lambda: listen_dns(reactor, self.fast.handle, self.tcp_factory,
                               config.dns_interfaces, config.dns_port, self._send_error))
        self.listening.setName("dns-listeners")
        self.listening.setServiceParent(self)
        self.probe_socket = ProbeSocket(reactor, probe_target(config.dns_interfaces,
                                                              config.dns_port))
        self.probe = DnsProbe(reactor, self.probe_socket.send)
        # Keeps the reactor's timers (and the times the engine, its
        # forwarders and the probe remember) right when the wall clock steps.
        self.clock_steps = ClockSteps(reactor)
        self.engine.watch_clock(self.clock_steps)
        self.clock_steps.listeners.append(self.probe.clock_stepped)

    def _send_error(self, error):
        self.stats.drop("send_error")

    def startService(self):
        tune_runtime()
        super().startService()
        self.runtime.start()
        self.runtime.onlink.start()
        started = self.store_ready() if self.store_ready is not None else None
        if self.store is not None:
            if started is None:
                self.runtime.start(self.store)
            else:
                def attach(result):
                    if self.running:
                        self.runtime.start(self.store)
                    return result
                started.addCallback(attach)
        try:
            self.probe_socket.open(self.probe)
        except Exception as e:
            log.error("cannot open the DNS self-probe socket: {e}", e=e)
        self.probe.start()
        self.clock_steps.start()
        where = ", ".join(self.config.dns_interfaces) or "every address"
        log.info("DNS on {where} port {port} (UDP and TCP); upstreams: {ups}", where=where,
                 port=self.config.dns_port, ups=list(self.runtime.effective_upstreams))

    def stopService(self):
        self.clock_steps.stop()
        self.probe.stop()
        self.probe_socket.close()
        self.runtime.onlink.stop()
        closing = self.runtime.stop()
        return gatherResults([closing, maybeDeferred(super().stopService)])
