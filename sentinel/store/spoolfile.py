"""
The query-log spool file's format (L{sentinel.store.logpipe} writes it,
L{sentinel.store.logwriter} reads it), and the set of its frames already
stored (L{FrameSet}), which the writer keeps in the database.

The file starts with a header: ``MAGIC`` (16 bytes, the format's
version) and the *run*, 16 random bytes that name this file among every
spool ever written.  Then records, each a ``RECORD`` head (``b"QLR1"``,
the frame's number, the body's length, the body's CRC-32) and the body
(``marshal`` of a list of rows).  Frame numbers count from 1 in a run and
are never reused in it, also after the file is emptied (truncated back to
its header).

Exactly once: every transaction of the writer that stores rows of
numbered frames adds those numbers to the run's L{FrameSet} in the
``query_log_spool`` table, in that same transaction.  A frame whose
number is in it is not stored again: sent again after the writer died
before answering, or found in a spool left by a daemon that was killed
(docs/STORAGE.md, "Who writes what").
"""

import bisect
import os
import struct
import zlib

LIMIT = 256 * 1024 * 1024  # bytes of records a spool holds at most (L{sentinel.store.logpipe})
MAGIC = b"sentinel-qlog/1\n"
HEADER_SIZE = len(MAGIC) + 16
RECORD = struct.Struct("!4sQII")  # b"QLR1", frame number, body length, crc32(body)
RECORD_MAGIC = b"QLR1"


def new_header():
    """(header bytes, run) for a new spool file."""
    run = os.urandom(16)
    return MAGIC + run, run.hex()


def run_of(header):
    """The run named by a file's first HEADER_SIZE bytes; ValueError if it is not a spool."""
    if len(header) != HEADER_SIZE or header[:len(MAGIC)] != MAGIC:
        raise ValueError("not a query-log spool of this version")
    return header[len(MAGIC):].hex()


def record_head(number, body):
    return RECORD.pack(RECORD_MAGIC, number, len(body), zlib.crc32(body))


def parse_record(data):
    """(number, body) of one whole record; ValueError if it is not one."""
    if len(data) < RECORD.size:
        raise ValueError("shorter than a record")
    magic, number, size, crc = RECORD.unpack_from(data)
    body = data[RECORD.size:]
    if magic != RECORD_MAGIC or size != len(body) or zlib.crc32(body) != crc:
        raise ValueError("not a whole record (torn, or not a spool record)")
    return number, body


class Scan:
    """
    Iterates over the whole records of a spool file (fd) after its header,
    in order, as (number, body), reading one at a time.  It stops at the
    first record that is not whole (the last one, torn by a kill, or
    garbage); ``torn`` is then the number of bytes from there to the end.
    """

    def __init__(self, fd, size):
        self.fd = fd
        self.size = size
        self.torn = 0

    def __iter__(self):
        offset = HEADER_SIZE
        while offset < self.size:
            head = os.pread(self.fd, RECORD.size, offset)
            try:
                if len(head) != RECORD.size:
                    raise ValueError
                magic, _, length, _ = RECORD.unpack(head)
                if magic != RECORD_MAGIC or offset + RECORD.size + length > self.size:
                    raise ValueError
                number, body = parse_record(head + os.pread(self.fd, length,
                                                            offset + RECORD.size))
            except ValueError:
                self.torn = self.size - offset
                return
            yield number, body
            offset += RECORD.size + length


class FrameSet:
    """
    A set of frame numbers, kept as sorted closed intervals and stored as
    text (``"1-250,252-260"``): the frames of a run are stored almost in
    order, so the set stays a few intervals long.
    """

    def __init__(self, text=""):
        self.ranges = []  # [[first, last]], sorted, disjoint, not adjacent
        for part in filter(None, (text or "").split(",")):
            first, _, last = part.partition("-")
            self.add_range(int(first), int(last or first))

    def __contains__(self, n):
        i = bisect.bisect_right(self.ranges, [n, float("inf")]) - 1
        return i >= 0 and self.ranges[i][0] <= n <= self.ranges[i][1]

    def add(self, n):
        self.add_range(n, n)

    def add_range(self, first, last):
        ranges = self.ranges
        i = bisect.bisect_left(ranges, [first, first])
        if i > 0 and ranges[i - 1][1] >= first - 1:
            i -= 1
            first = min(first, ranges[i][0])
        j = i
        while j < len(ranges) and ranges[j][0] <= last + 1:
            last = max(last, ranges[j][1])
            j += 1
        ranges[i:j] = [[first, last]]

    def __str__(self):
        return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in self.ranges)
