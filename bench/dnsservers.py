"""
The servers the DNS benchmark compares, each started on 127.0.0.1 and
pinned to one core: Sentinel (the real ``twistd sentinel``, blocklist
loaded through its API, query log on), dnsmasq (blocklist as addn-hosts,
cache 10000 like Pi-hole), unbound (one thread, forwarder, local-zone
blocks) and a naive twisted.names forwarder; plus the authoritative
upstream (NSD with wildcard zones, pinned to the load generator's core) and,
as a reference, a second NSD answering directly on the servers' core (the
load generator's ceiling).
"""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "import sys; sys.argv[0] = 'twistd'; "
          "from twisted.scripts.twistd import run; run()"]


def free_port():
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def wait_dns(port, name, timeout=120, want=None):
    """Wait until ``dig`` gets an answer (with status ``want`` if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=1",
                              name], capture_output=True, text=True).stdout
        if "status:" in out and (want is None or f"status: {want}" in out):
            return
        time.sleep(0.3)
    raise RuntimeError(f"DNS on port {port} did not answer {name} ({want})")


class Process:
    def __init__(self, name, argv, core, workdir, env=None):
        self.name = name
        self.log = open(os.path.join(workdir, f"{name}.log"), "wb")
        self.proc = subprocess.Popen(["taskset", "-c", str(core)] + argv, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=workdir)

    @property
    def pid(self):
        return self.proc.pid

    def cpu_seconds(self):
        """CPU time (user + system) of this process, its threads and children."""
        return sum(_cpu_of(pid) for pid in _tree(self.pid))

    def rss_kb(self):
        """(current, peak) resident set size in KiB."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        return out.get("VmRSS", 0), out.get("VmHWM", 0)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def _tree(pid):
    """pid and its descendants (children listed by the kernel)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _cpu_of(pid):
    """utime + stime of every thread of pid, in seconds (0 if it is gone)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        pass
    return total / os.sysconf("SC_CLK_TCK")


def start_nsd(work, name, zones, core, ttl=3600):
    """
    NSD (one server process, rate limiting off) answering every name under
    each of ``zones`` (a wildcard A record) with TTL ``ttl``, authoritative
    for ``test.`` (other names under it: NXDOMAIN).
    """
    port = free_port()
    directory = os.path.join(work, name)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "test.zone"), "w") as f:
        f.write(f"$TTL {ttl}\ntest. IN SOA ns.test. host.test. 1 3600 600 86400 {ttl}\n"
                "test. IN NS ns.test.\nns.test. IN A 198.18.0.9\n")
        for zone, address in zones.items():
            f.write(f"*.{zone}. IN A {address}\n")
    conf = os.path.join(directory, "nsd.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    port: {port}
    ip-address: 127.0.0.1
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{directory}"
    pidfile: "{directory}/nsd.pid"
    database: ""
    zonelistfile: "{directory}/zone.list"
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}"
    logfile: "{directory}/nsd.log"
    verbosity: 0
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    refuse-any: no
remote-control:
    control-enable: no
zone:
    name: "test."
    zonefile: "test.zone"
""")
    p = Process(name, ["nsd", "-d", "-c", conf], core, work)
    p.port = port
    wait_dns(port, "x." + next(iter(zones)))
    return p


def start_dnsmasq(work, upstream_port, hosts_file, core):
    port = free_port()
    conf = os.path.join(work, "dnsmasq.conf")
    with open(conf, "w") as f:
        f.write(f"port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\n"
                f"no-hosts\nserver=127.0.0.1#{upstream_port}\naddn-hosts={hosts_file}\n"
                f"cache-size=10000\nlog-facility={work}/dnsmasq-own.log\n")
    p = Process("dnsmasq", ["dnsmasq", "-k", "-C", conf, "--pid-file="], core, work)
    p.port = port
    return p


def start_unbound(work, upstream_port, blocked, core):
    port = free_port()
    zones = os.path.join(work, "unbound-blocks.conf")
    with open(zones, "w") as f:
        for name in blocked:
            f.write(f'local-zone: "{name}." always_nxdomain\n')
    conf = os.path.join(work, "unbound.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
    interface: 127.0.0.1
    port: {port}
    num-threads: 1
    do-daemonize: no
    chroot: ""
    username: ""
    pidfile: ""
    directory: "{work}"
    use-syslog: no
    logfile: ""
    verbosity: 0
    prefetch: no
    serve-expired: no
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "iterator"
    local-zone: "test." nodefault
    include: "{zones}"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{upstream_port}
""")
    p = Process("unbound", ["unbound", "-d", "-c", conf], core, work)
    p.port = port
    return p


def start_naive(work, upstream_port, blocked_file, core):
    port = free_port()
    p = Process("naive", [PYTHON, os.path.join(REPO, "bench", "naive_forwarder.py"),
                          str(port), str(upstream_port), blocked_file], core, work)
    p.port = port
    return p


class _ListHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def serve_list(text):
    """Serve a blocklist over HTTP on loopback (for Sentinel to download)."""
    handler = type("Handler", (_ListHandler,), {"body": text.encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _api(base, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers=dict(headers or {}, **({"Content-Type":
                                              "application/json"} if data else {})))
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null"), r.headers


def start_sentinel(work, upstream_port, list_url, probe_blocked, core, interface="127.0.0.1"):
    port, http_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="sentinel-data-", dir=work)
    argv = TWISTD + ["--nodaemon", "--pidfile=", "sentinel", "--data-dir", data,
                     "--dns-port", str(port), "--dns-interface", interface,
                     "--http-port", str(http_port), "--http-interface", "127.0.0.1",
                     "--upstream", f"127.0.0.1:{upstream_port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env["PYTHONPATH"] = REPO
    p = Process("sentinel", argv, core, work, env=env)
    p.port = port
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _api(base, "GET", "/api/health")
            break
        except OSError:
            if time.monotonic() > deadline or p.proc.poll() is not None:
                raise RuntimeError("Sentinel did not start; see sentinel.log")
            time.sleep(0.2)
    _, headers = _api(base, "POST", "/api/auth/setup",
                      {"username": "bench", "password": "bench bench bench"})
    cookie = headers.get("Set-Cookie", "").split(";")[0]
    token = _api(base, "POST", "/api/auth/tokens", {"name": "bench"},
                 {"Cookie": cookie})[0]["token"]
    auth = {"Authorization": f"Bearer {token}"}
    _api(base, "POST", "/api/blocklists", {"name": "bench", "url": list_url}, auth)
    wait_dns(port, probe_blocked, timeout=300, want="NXDOMAIN")
    p.api = lambda method, path, body=None: _api(base, method, path, body, auth)[0]
    p.metrics = lambda: _metrics(base, auth)
    p.settle = lambda: _settle(p)
    p.log_dropped = p.metrics().get("sentinel_querylog_dropped_total", 0.0)
    return p


def _settle(p, wait=120):
    """
    After a run: wait until the query log has stored what it buffered
    (the next run must not start with a backlog); returns the rows
    dropped since the last call (the buffer was full: the log writer
    could not keep up).
    """
    deadline = time.monotonic() + wait
    while True:
        m = p.metrics()
        if not m.get("sentinel_querylog_buffered") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(0.5)  # the frame in flight
    dropped = m.get("sentinel_querylog_dropped_total", 0.0)
    new, p.log_dropped = dropped - p.log_dropped, dropped
    return new


def _metrics(base, auth):
    """Prometheus text from /metrics -> {name: sum of its samples}."""
    req = urllib.request.Request(base + "/metrics", headers=auth)
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out
