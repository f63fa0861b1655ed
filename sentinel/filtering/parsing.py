"""
Parsing a downloaded list into its stored form, in a child process.

Parsing 1M lines allocates a few hundred MB of short-lived strings; done in
the daemon that would hold the GIL against DNS for seconds and leave the
process' RSS high afterwards (freed small objects are not returned to the
OS).  So the daemon hands the bytes to ``python -m
sentinel.filtering.parsing`` (niced) and gets back a summary and the blob;
a hostile list can at worst make that child fail.

Protocol: body on stdin; on stdout a 4-byte length, a JSON summary, then
the blob (see L{sentinel.filtering.listformat}).
"""

import json
import os
import struct
import sys

import attr
from twisted.internet import protocol
from twisted.internet.defer import Deferred, fail

from sentinel.filtering import listformat

CHILD_TIMEOUT = 300.0
_LEN = struct.Struct("!I")


class ParseError(Exception):
    pass


@attr.s(frozen=True, auto_attribs=True)
class Summary:
    domains: int
    allows: int
    skipped: int
    examples: tuple


def parse_and_encode(body):
    """Downloaded bytes -> (Summary, blob).  Pure; used in the child and in tests."""
    parsed = listformat.parse(listformat.text_of(body))
    summary = Summary(len(parsed.blocked), len(parsed.allowed), parsed.skipped,
                      tuple(parsed.examples))
    return summary, listformat.encode(parsed)


def inline(body):
    """Parse in this process (unit tests); a fired Deferred."""
    from twisted.internet.defer import succeed

    return succeed(parse_and_encode(body))


class _Child(protocol.ProcessProtocol):
    def __init__(self, body, done):
        self.body = body
        self.done = done
        # The answer is gathered in place and the blob handed on as a view of
        # it: joining the pieces and slicing the blob out of the result were
        # two copies of it on the reactor thread (~9 ms each for a 2M-name
        # list's 14 MB, holding the GIL).
        self.out = bytearray()
        self.err = []

    def connectionMade(self):
        self.transport.write(self.body)
        self.body = None
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        if sum(map(len, self.err)) < 8192:
            self.err.append(data)

    def processEnded(self, reason):
        out, self.out = memoryview(self.out), bytearray()
        code = getattr(reason.value, "exitCode", None)
        if code != 0 or len(out) < _LEN.size:
            tail = b"".join(self.err).decode("utf-8", "replace").strip().splitlines()
            self.done.errback(ParseError(
                f"the list parser failed ({tail[-1] if tail else f'exit status {code}'})"))
            return
        try:
            (n,) = _LEN.unpack_from(out)
            if len(out) < _LEN.size + n:
                raise ValueError("its answer is cut short")
            meta = json.loads(bytes(out[_LEN.size:_LEN.size + n]))
            summary = Summary(int(meta["domains"]), int(meta["allows"]), int(meta["skipped"]),
                              tuple(str(e) for e in meta["examples"]))
        except (ValueError, KeyError, TypeError) as e:
            self.done.errback(ParseError(f"the list parser answered nonsense ({e})"))
            return
        self.done.callback((summary, out[_LEN.size + n:]))


def in_child(reactor, clock=None, timeout=CHILD_TIMEOUT):
    """
    A parse function: body -> Deferred of (Summary, blob) from a child
    process; the blob is a memoryview (of the child's answer), not bytes.
    """
    clock = clock or reactor
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def parse(body):
        done = Deferred()
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        child = _Child(body, done)
        try:
            process = reactor.spawnProcess(
                child, sys.executable, [sys.executable, "-m", "sentinel.filtering.parsing"],
                env=env)
        except Exception as e:  # e.g. out of processes or file descriptors
            return fail(ParseError(f"the list parser could not start ({e})"))

        def kill():
            try:
                process.signalProcess("KILL")
            except Exception:
                pass

        timer = clock.callLater(timeout, kill)

        def stop(result):
            if timer.active():
                timer.cancel()
            return result

        return done.addBoth(stop)

    return parse


def step_aside():
    """
    The child yields to the daemon: niced (DNS first), and the process the
    kernel's OOM killer takes first.  A list at the 64 MB cap made of short
    names is ~13M entries, a few GB while parsed; on a small machine the
    daemon (large too, once lists are loaded) could otherwise be the one
    killed.  Raising one's own score needs no privilege.
    """
    try:
        os.nice(10)
    except OSError:
        pass
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def main():
    step_aside()
    summary, blob = parse_and_encode(sys.stdin.buffer.read())
    meta = json.dumps(attr.asdict(summary)).encode()
    out = sys.stdout.buffer
    out.write(_LEN.pack(len(meta)) + meta)
    out.write(blob)
    out.flush()


if __name__ == "__main__":
    main()
