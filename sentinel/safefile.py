"""
Reading a file from the data directory without trusting it: it may have
been replaced by a FIFO (a plain open() would wait for a writer forever,
and the daemon may be reading on its reactor), a directory, a device, or
something huge.  Used for the files the daemon reads back (the HA files,
the last-known-good policy).
"""

import os
import stat


class UnreadableFile(Exception):
    """Why the file cannot be read, without its path: 'not a regular file'."""


def read_limited(path, limit):
    """
    The bytes of the regular file ``path`` (at most ``limit``), None if it
    does not exist; raises L{UnreadableFile}.  Never blocks, never reads
    more than ``limit`` + 1 bytes (the file may grow while it is read).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UnreadableFile(f"cannot read ({e.strerror})") from None
    chunks, size = [], 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("not a regular file")
        if info.st_size > limit:
            raise UnreadableFile(f"larger than {limit} bytes")
        while size <= limit:
            # What fstat promised (+1 to see the end), not a limit-sized buffer.
            chunk = os.read(fd, min(limit + 1 - size, max(info.st_size + 1 - size, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise UnreadableFile(f"cannot read ({e.strerror})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UnreadableFile(f"larger than {limit} bytes")
    return b"".join(chunks)
