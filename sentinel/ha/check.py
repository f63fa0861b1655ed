"""
keepalived's readiness check (``vrrp_script sentinel_ready``), run every
second as ``python3 -I -S check.py --url URL --peers FILE --window S``.
Standard library only, so it starts in a few milliseconds.

Exit 0 (take part in the election) when:
- ``GET URL`` answers 200 with ``"ok": true``; or
- the daemon answers but is not ready (e.g. a follower whose last sync is
  too old) and no other node has advertised with a priority in the last
  WINDOW seconds: a node with possibly stale settings serving DNS beats no
  node serving DNS.  A priority-0 advert (the holder leaving: its daemon
  crashed, its sidecar restarts, it hands the VIP over) does not restart
  nor end the window: a holder that is back within WINDOW seconds takes
  the VIP again, and the node that is not ready stays out.

Exit 1 otherwise: the daemon does not answer (crashed, hung), or it is not
ready while another node is alive to hold the VIP.
"""

import json
import os
import stat
import sys
import time
import urllib.parse
import http.client


def probe(url, timeout):
    """(reachable, ready, detail)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False, False, f"unsupported URL {url!r}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(65536)
    except (OSError, http.client.HTTPException) as e:
        return False, False, f"daemon not answering: {e}"
    finally:
        conn.close()
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return True, False, f"HTTP {response.status}, not JSON"
    ready = response.status == 200 and isinstance(doc, dict) and doc.get("ok") is True
    return True, ready, f"HTTP {response.status} {body[:200]!r}"


def _read_regular(path, limit):
    """The bytes of a regular file; OSError for anything else.  Never blocks:
    a FIFO in place of peers.json (nobody writing) would hang the check until
    keepalived's script timeout, at every run."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def other_master_alive(path, now, window):
    try:
        doc = json.loads(_read_regular(path, 1024 * 1024).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    peers = doc.get("peers") if isinstance(doc, dict) else None
    if not isinstance(peers, dict):
        return None
    for info in peers.values():
        if not isinstance(info, dict):
            continue
        alive = info.get("lastAlive")
        if alive is None and isinstance(info.get("priority"), int) and info["priority"] > 0:
            alive = info.get("lastSeen")  # a peers.json without lastAlive
        if isinstance(alive, (int, float)) and not isinstance(alive, bool) \
                and now - window <= alive <= now + 5:
            return True
    return False


def decide(reachable, ready, other_alive):
    if not reachable:
        return 1
    if ready:
        return 0
    # Not ready: stand aside only if somebody else can serve (unknown
    # counts as "somebody": we cannot tell, so the gate holds).
    return 1 if other_alive in (True, None) else 0


def parse_args(argv):
    args = {"--url": None, "--peers": None, "--window": "5", "--timeout": "1"}
    it = iter(argv)
    for name in it:
        if name not in args:
            raise SystemExit(f"check: unknown argument {name!r}")
        args[name] = next(it, None)
    if not args["--url"]:
        raise SystemExit("check: --url is required")
    return args


def main(argv=None, now=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    reachable, ready, detail = probe(args["--url"], float(args["--timeout"]))
    alive = None
    if reachable and not ready and args["--peers"]:
        alive = other_master_alive(args["--peers"], now or time.time(),
                                   float(args["--window"]))
    status = decide(reachable, ready, alive)
    if status:
        sys.stderr.write(f"sentinel not ready: {detail}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
