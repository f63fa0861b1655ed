"""
Network namespace helpers shared by the tests that use them (the isolated
fuzzing daemon, the HA LAN): whether namespaces can be made here, and
running a function inside one.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import threading
import uuid

_CLONE_NEWNET = 0x40000000


def skip_reason():
    """Why namespace tests cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (scripts/test runs as root)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = f"sntprobe{uuid.uuid4().hex[:6]}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create network namespaces: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def in_namespace(ns, fn, *args, timeout=60, **kw):
    """
    fn(*args, **kw) in a fresh thread that has entered network namespace
    ``ns`` (setns affects only the calling thread), so sockets it opens
    live there.  Returns fn's result or raises its exception.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    result = {}

    def body():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({ns}) failed")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the caller
            result["error"] = e

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{fn} in {ns} did not finish in {timeout}s")
    if "error" in result:
        raise result["error"]
    return result["value"]
