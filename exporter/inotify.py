"""A minimal non-blocking inotify(7) reader over ctypes, for the scanner's prefix directories.

Only directory-entry events are asked for (create, delete, move, attribute change
of the directory itself). Events from other hosts on a network filesystem never
arrive, so callers use this as a shortcut and keep a directory's mtime as the truth.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x4, 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x400, 0x800, 0x4000, 0x8000, 0x40000000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_NONBLOCK, IN_CLOEXEC = 0x01000000, 0x02000000, 0o4000, 0o2000000
MASK = IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
MAX_EVENTS = 16384  # the kernel's default fs.inotify.max_queued_events; past it, listing is cheaper than names
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Overflow(Exception):
    """The kernel dropped events: every watched directory must be looked at again."""


class Watcher:
    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.paths: dict[int, str] = {}

    def watch(self, path: str) -> None:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), MASK | IN_ONLYDIR | IN_DONT_FOLLOW)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        self.paths[wd] = path

    def try_watch(self, path: str) -> bool:
        """``watch``, False instead of an error when it cannot (out of watches: the caller lists instead)."""
        try:
            self.watch(path)
            return True
        except OSError:
            return False

    def read(self, limit: int | None = None) -> list[tuple[str, int, str]]:
        """Pending events as (watched directory, mask, entry name); raises Overflow when the kernel dropped
        some or more than ``limit`` were pending (the queue is drained either way): a push of 1 % of 10M
        blobs is 100,000 events, and an operator may have raised fs.inotify.max_queued_events that far."""
        limit = MAX_EVENTS if limit is None else limit
        events: list[tuple[str, int, str]] = []
        overflow = False
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                if overflow:
                    raise Overflow()
                return events
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(buf):
                wd, mask, _, size = HEADER.unpack_from(buf, offset)
                name = buf[offset + HEADER.size:offset + HEADER.size + size].rstrip(b"\0")
                offset += HEADER.size + size
                path = self.paths.pop(wd, None) if mask & IN_IGNORED else self.paths.get(wd)
                overflow = overflow or bool(mask & IN_Q_OVERFLOW) or len(events) >= limit
                if overflow:
                    events.clear()
                elif path is not None:
                    events.append((path, mask, os.fsdecode(name)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    __del__ = close  # an inotify instance is a scarce per-user resource (fs.inotify.max_user_instances)
