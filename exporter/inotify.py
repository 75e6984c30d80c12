"""inotify(7) over ctypes, for the scanners' prefix directories, drained as events arrive.

Only directory-entry events are asked for (create, delete, move, attribute change
of the directory itself). Events from other hosts on a network filesystem never
arrive, so callers use this as a shortcut and keep a directory's mtime as the truth.

The kernel queues at most fs.inotify.max_queued_events (16,384 by default) per
instance and drops the rest; a push of 1 % of 10M blobs is 100,000 new digest
directories. So a ``Journal`` reads its instance on a daemon thread as events come
and keeps what a pass needs until the pass ``take``s it: per watched directory the
digest directories created (a sha256 name in 32 bytes), and whether anything else
happened there. Past SPILL bytes a directory, the names go to a file of that
directory's in the journal's own directory (the state directory when there is one):
memory stays at a few KiB a directory whatever the push.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import select
import shutil
import struct
import tempfile
import threading
import weakref
from typing import Iterator

IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x4, 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x400, 0x800, 0x4000, 0x8000, 0x40000000
IN_ONLYDIR, IN_DONT_FOLLOW, IN_NONBLOCK, IN_CLOEXEC = 0x01000000, 0x02000000, 0o4000, 0o2000000
MASK = IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
# names kept between two passes (32 MiB of files, 10 % of 10M blobs); past it, so much changed that
# listing each directory again costs less
MAX_NAMES = 1 << 20
MAX_HELD = 1 << 17  # the same in memory, when no directory takes the files (4 MiB, 1 % of 10M blobs)
SPILL = 4096  # bytes of names a directory keeps in memory before they go to its file
PAUSE = 0.05  # s between two reads: a push is thousands of events, taken a queue at a time
_SHA256 = re.compile(rb"[0-9a-f]{64}")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Watcher:
    """One non-blocking inotify instance and the directories it watches."""

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

    def events(self) -> Iterator[tuple[str | None, int, bytes]]:
        """The queued events as (watched directory, mask, entry name), until the queue is empty; an overflow
        has no directory."""
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(buf):
                wd, mask, _, size = HEADER.unpack_from(buf, offset)
                name = buf[offset + HEADER.size:offset + HEADER.size + size].rstrip(b"\0")
                offset += HEADER.size + size
                yield self.paths.pop(wd, None) if mask & IN_IGNORED else self.paths.get(wd), mask, name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    __del__ = close  # an inotify instance is a scarce per-user resource (fs.inotify.max_user_instances)


class Batch:
    """What happened in the watched directories between two ``take``s. With ``spill`` (a path prefix), the
    names past SPILL bytes a directory are in files named from it, removed with the Batch."""

    def __init__(self, spill: str | None = None):
        self.overflow = False  # events were lost: every directory must be listed again
        self.dirty: set[str] = set()  # directories where something was removed, moved away or chmod-ed
        self.count = 0
        self._digests: dict[str, bytearray] = {}  # directory -> sha256 names of new subdirectories, 32 bytes each
        self._others: dict[str, dict[str, bool]] = {}  # directory -> any other new name -> is a directory
        self._spill = spill
        self._files: dict[str, str] = {}  # directory -> the file of its names before those in _digests
        weakref.finalize(self, _remove, self._files)

    def relist(self, path: str) -> bool:
        """Whether ``path`` must be listed: its new names alone do not say what changed."""
        return self.overflow or path in self.dirty

    def created(self, path: str) -> dict[str, bool] | None:
        """The names created in ``path``, each with whether it is known to be a directory (not a symlink);
        None when they cannot be read back (``path`` must be listed)."""
        raw = self._digests.get(path, b"")
        if path in self._files:
            try:
                with open(self._files[path], "rb") as f:
                    raw = f.read() + raw
            except OSError:
                return None
        names = {raw[i:i + 32].hex(): True for i in range(0, len(raw), 32)}
        names.update(self._others.get(path, {}))
        return names

    def add(self, path: str, mask: int, name: bytes, limit: int) -> None:
        if not mask & (IN_CREATE | IN_MOVED_TO) or not name:
            self.dirty.add(path)  # a removal, a move away, a chmod of the directory itself
        elif self.count >= limit:
            self.lose()
        else:
            self.count += 1
            if mask & IN_ISDIR and _SHA256.fullmatch(name):
                names = self._digests.setdefault(path, bytearray())
                names += bytes.fromhex(name.decode())
                if len(names) >= SPILL and self._spill:
                    self._flush(path, names)
            else:
                self._others.setdefault(path, {})[os.fsdecode(name)] = bool(mask & IN_ISDIR)

    def _flush(self, path: str, names: bytearray) -> None:
        file = self._files.setdefault(path, f"{self._spill}.{len(self._files)}")
        try:
            with open(file, "ab") as f:
                f.write(names)
        except OSError:
            self.lose()  # the names cannot be kept: every directory is listed instead
            return
        names.clear()

    def lose(self) -> None:
        self.overflow = True
        _remove(self._files)
        self._digests, self._others, self.dirty, self.count = {}, {}, set(), 0


def _remove(files: dict[str, str]) -> None:
    for file in files.values():
        try:
            os.unlink(file)
        except OSError:
            pass  # its directory went first (the journal closed)
    files.clear()


class Journal:
    """A Watcher read on a daemon thread into a Batch of at most ``limit`` names (past it, an overflow;
    default MAX_NAMES, or MAX_HELD when ``directory`` cannot be made). ``directory`` takes the names' files:
    emptied first (a cache, as any earlier process left it), removed on ``close``; None: a private temporary
    one. ``close`` (or collecting the Journal) stops the thread, which closes the instance."""

    def __init__(self, directory: str | os.PathLike | None = None, limit: int | None = None):
        try:
            if directory is None:
                spill: str | None = tempfile.mkdtemp(prefix="dtr-sizing-exporter-inotify-")
            else:
                shutil.rmtree(directory, ignore_errors=True)
                os.mkdir(directory, 0o700)
                spill = os.fspath(directory)
        except OSError:
            spill = None  # names stay in memory
        self._reader = _Reader(Watcher(), spill, limit)
        self._close = weakref.finalize(self, self._reader.stop)
        threading.Thread(target=self._reader.run, name="inotify", daemon=True).start()

    def watch(self, path: str) -> bool:
        """Watch ``path``; False when it cannot (out of watches: the caller lists it instead)."""
        return self._reader.watch(path)

    def take(self) -> Batch:
        """Everything since the last take, events still queued in the kernel included."""
        return self._reader.take()

    def close(self) -> None:
        self._close()


class _Reader:
    """The Journal's state, apart from it so that its thread does not keep it alive."""

    def __init__(self, watcher: Watcher, spill: str | None, limit: int | None):
        self.watcher = watcher
        self.spill = spill
        self.batches = 0
        self.limit = limit
        self.lock = threading.Lock()
        self.batch = self._next()
        self.dead = False  # the thread stopped: nothing more is heard, every take is an overflow
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def watch(self, path: str) -> bool:
        with self.lock:  # its number is known before the reader meets its first event
            if self.dead:
                return False
            try:
                self.watcher.watch(path)
                return True
            except OSError:
                return False

    def take(self) -> Batch:
        with self.lock:
            if self.dead:
                self.batch.lose()
            else:
                self._pump()
            batch, self.batch = self.batch, self._next()
        return batch

    def _next(self) -> Batch:
        self.batches += 1
        return Batch(self.spill and f"{self.spill}/{self.batches}")

    def _pump(self) -> None:
        limit = self.limit if self.limit is not None else MAX_NAMES if self.spill else MAX_HELD
        batch = self.batch
        for path, mask, name in self.watcher.events():
            if mask & IN_Q_OVERFLOW:
                batch.lose()
            elif path is not None and not batch.overflow:
                batch.add(path, mask, name, limit)

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.watcher.fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while all(fd != self.wake_r for fd, _ in poller.poll()):
                with self.lock:
                    self._pump()
                if select.select([self.wake_r], [], [], PAUSE)[0]:
                    break
        finally:
            with self.lock:
                self.dead = True
                self.watcher.close()
            os.close(self.wake_r)

    def stop(self) -> None:
        """End the thread, and remove the names' files now: at exit the thread may never run again."""
        if self.wake_w >= 0:
            os.write(self.wake_w, b"x")
            os.close(self.wake_w)
            self.wake_w = -1
        if self.spill:
            shutil.rmtree(self.spill, ignore_errors=True)  # a file the thread adds meanwhile fails: an overflow
