"""
Files in the data directory.

Reading one without trusting it (L{read_limited}): it may have been
replaced by a FIFO (a plain open() would wait for a writer forever, and
the daemon may be reading on its reactor), a directory, a device, or
something huge.  Used for the files the daemon reads back (the HA files,
the last-known-good policy).

Writing one atomically (L{atomic_write}: temporary file, fsync, rename,
then the directory synced): readers see the old or the new content, never
a torn one, also after a power loss.
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


def atomic_write(path, data, mode=0o600):
    """Replace ``path`` with ``data`` (bytes or str), mode ``mode`` whatever the umask."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # not narrowed/widened by the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    sync_directory(path)


def sync_directory(path):
    """Make a rename or removal of ``path`` durable (fsync its directory); best effort."""
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
