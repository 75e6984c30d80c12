"""Walks a Distribution filesystem store: blobs here, repositories and uploads in exporter.repositories.

Layout (under ``docker/registry/v2``)::

    blobs/<alg>/<2 hex>/<digest>/data
    repositories/<name, may be nested a/b/c>/{_manifests,_layers,_uploads/<id>/{data,startedat}}

Blob directories are content-addressed and never change in place, and a
2-hex prefix directory's mtime changes whenever a digest directory is added
or removed under it (and its ctime on a chmod). The scanner keeps one summary
per prefix directory, keyed by (inode, mtime, ctime), and on a rescan lists
again only prefix directories whose key changed. Because 1 % new blobs land
in nearly every prefix, the summary also holds KEY bytes per blob counted
(8 MiB per million blobs, no per-blob Python objects), and a changed prefix is
not even listed: inotify watches on the prefix directories name the digest
directories created since the last scan, and only those are stat-ed. Without
inotify (a network filesystem, where other hosts' changes raise no events,
an event queue overflow, no watches left) a changed prefix is listed (names
only, no stat) and again only digests not seen before are stat-ed. A prefix
that lost a digest (garbage collection) is measured again in full. A change
*inside* a digest directory (a ``data`` file truncated in place, which the
registry never does) leaves the prefix unchanged: a full verification every
``verify_every`` seconds catches it.

Symlinks are never followed. A file that vanishes mid-scan (garbage
collection, a concurrent push) is simply not counted. A directory that
cannot be read is counted in ``errors`` and skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import inotify, repositories
from .repositories import Uploads, subdirs

V2 = Path("docker", "registry", "v2")
KEY = 8  # bytes of a digest kept per blob: 8 MiB per million blobs
RACY_SECONDS = 2.0  # a directory changed this recently may change again within the same mtime tick


def resolve_v2(path: Path) -> Path | None:
    """The ``v2`` directory for a storage path: the root holding ``docker/registry/v2``, or ``v2`` itself.

    An empty directory is a store with nothing in it yet; anything else without the layout is None.
    """
    if (path / V2).is_dir():
        return path / V2
    if (path / "blobs").is_dir() or (path / "repositories").is_dir():
        return path
    if path.is_dir() and next(path.iterdir(), None) is None:
        return path / V2  # a registry that has not stored anything yet
    return None


@dataclass(frozen=True)
class Prefix:
    """What one 2-hex prefix directory held when it was last listed."""

    key: tuple[int, int, int] | None  # (inode, mtime_ns, ctime_ns); None: list again next time
    blobs: int
    bytes: int
    errors: int
    keys: bytes = b""  # KEY bytes per blob counted, sorted: which digests are known, to stat only new ones
    pending: tuple[str, ...] = ()  # digest directories seen without data yet (a push in flight)
    watched: bool = False  # inotify reports what is added here


@dataclass
class Result:
    blobs: int = 0
    blob_bytes: int = 0
    repositories: int = 0
    uploads: Uploads = field(default_factory=Uploads)  # from exporter.repositories
    errors: int = 0
    prefixes_changed: int = 0  # prefix directories looked into this time (the rest came from summaries)
    files_examined: int = 0
    full: bool = True


class Throttle:
    """Holds a scan to ``rate`` files per second (0: no limit), sleeping in short naps."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep):
        self.rate, self.sleep = rate, sleep
        self._start = time.monotonic()
        self._done = 0

    def tick(self, n: int = 1) -> None:
        self._done += n
        if self.rate <= 0 or self._done % 64:
            return
        ahead = self._done / self.rate - (time.monotonic() - self._start)
        if ahead > 0:
            self.sleep(ahead)


class Scanner:
    """Scans one store, incrementally after the first time.

    ``progress`` is the number of files examined in the running scan, for a
    terminal progress line. Not thread-safe: one scan at a time.
    """

    def __init__(self, v2: Path, rate: float = 0.0, verify_every: float = 86400.0,
                 clock: Callable[[], float] = time.time):
        self.v2 = v2
        self.rate = rate
        self.verify_every = verify_every
        self.clock = clock
        self.progress = 0
        self._prefixes: dict[str, Prefix] = {}
        self._last_full: float | None = None
        try:
            self._watcher: inotify.Watcher | None = inotify.Watcher()
        except OSError:
            self._watcher = None  # out of inotify instances: listing changed prefixes still works
        self._created: dict[str, dict[str, bool]] = {}  # prefix -> new entry -> is a directory
        self._dirty: set[str] = set()

    def close(self) -> None:
        if self._watcher:
            self._watcher.close()
            self._watcher = None

    def _drain(self) -> None:
        """Sort pending inotify events into names created per prefix and prefixes needing a listing."""
        self._created, self._dirty = {}, set()
        if self._watcher is None:
            return
        try:
            events = self._watcher.read()
        except inotify.Overflow:
            self._dirty = set(self._prefixes)
            return
        for path, mask, name in events:
            if mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO) and name:
                # IN_ISDIR: the entry is a directory, not a symlink, so it needs no lstat
                self._created.setdefault(path, {})[name] = bool(mask & inotify.IN_ISDIR)
            else:  # a removal, a move away, a chmod of the prefix itself
                self._dirty.add(path)

    def _watch(self, path: str) -> bool:
        # out of watches (or none): this prefix is listed when it changes
        return self._watcher is not None and self._watcher.try_watch(path)

    def scan(self, full: bool = False) -> Result:
        now = self.clock()
        full = full or self._last_full is None or not 0 <= now - self._last_full < self.verify_every
        throttle = Throttle(self.rate)
        self.progress = 0
        result = Result(full=full)
        self._drain()
        self._scan_blobs(result, throttle, full, now)
        repos = repositories.walk(self.v2 / "repositories", now, self._tick(throttle))
        result.repositories, result.uploads = repos.count, repos.uploads
        result.errors += repos.errors
        result.files_examined = self.progress
        if full:
            self._last_full = now
        return result

    # --- blobs -------------------------------------------------------------

    def _scan_blobs(self, result: Result, throttle: Throttle, full: bool, now: float) -> None:
        seen: dict[str, Prefix] = {}
        for alg in subdirs(self.v2 / "blobs", result):
            for entry in subdirs(Path(alg.path), result):
                prefix = self._prefix(entry, full, now, throttle)
                if prefix is None:  # vanished between listing and stat
                    continue
                if prefix is not self._prefixes.get(entry.path):
                    result.prefixes_changed += 1
                seen[entry.path] = prefix
                result.blobs += prefix.blobs
                result.blob_bytes += prefix.bytes
                result.errors += prefix.errors
        self._prefixes = seen  # prefixes removed since last time drop out here

    def _prefix(self, entry: os.DirEntry, full: bool, now: float, throttle: Throttle) -> Prefix | None:
        try:
            st = entry.stat(follow_symlinks=False)
            key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
            known = self._prefixes.get(entry.path)
            if not full and known is not None and known.key == key and not known.pending:
                return known
            racy = now - st.st_mtime_ns / 1e9 < RACY_SECONDS or now - st.st_ctime_ns / 1e9 < RACY_SECONDS
            if not full and known is not None and not known.errors:
                if known.watched and entry.path not in self._dirty:
                    # inotify named what was added: no listing at all
                    found = {n: False for n in known.pending}
                    found.update(self._created.get(entry.path, {}))
                else:
                    names = os.listdir(entry.path)  # names only: four times cheaper than entries with types
                    listed = {digest_key(n) for n in names}
                    if any(known.keys[i:i + KEY] not in listed for i in range(0, len(known.keys), KEY)):
                        found = None  # something was removed: measure the prefix again
                    else:
                        found = dict.fromkeys(names, False)
                if found is not None:  # only the new digests need a stat
                    watched = self._watch(entry.path)
                    new, where = [], {}
                    for name, is_dir in found.items():
                        k = digest_key(name)
                        at = _position(known.keys, k)
                        if known.keys[at * KEY:(at + 1) * KEY] != k and (is_dir or is_real_dir(entry.path, name)):
                            new.append(name)
                            where[k] = at
                    blobs, size, errors, counted, pending = self._measure(entry.path, new, throttle)
                    return Prefix(None if racy or errors else key, known.blobs + blobs, known.bytes + size,
                                  errors, _insert(known.keys, sorted((where[k], k) for k in counted)), pending,
                                  watched)
            watched = self._watch(entry.path)  # before listing, so nothing added meanwhile is missed
            with os.scandir(entry.path) as listing:  # d_type: no stat per entry, symlinks not followed
                # in inode order, as du does: on a cold cache the inode table is read sequentially
                names = [d.name for d in sorted((d for d in listing if d.is_dir(follow_symlinks=False)),
                                                key=os.DirEntry.inode)]
        except FileNotFoundError:
            return None
        except OSError:
            return Prefix(None, 0, 0, 1)
        blobs, size, errors, counted, pending = self._measure(entry.path, names, throttle)
        return Prefix(None if racy or errors else key, blobs, size, errors, b"".join(sorted(counted)), pending,
                      watched)

    def _tick(self, throttle: Throttle) -> Callable[[], None]:
        def tick() -> None:
            self.progress += 1
            throttle.tick()
        return tick

    def _measure(self, prefix: str, names: list[str], throttle: Throttle):
        """(blobs, bytes, errors, keys of the blobs counted, names without data) for digest directories."""
        blobs = size = errors = 0
        counted, pending = [], []
        for name in names:
            self.progress += 1
            throttle.tick()
            try:
                data = os.stat(f"{prefix}/{name}/data", follow_symlinks=False)
            except FileNotFoundError:
                if is_real_dir(prefix, name):
                    pending.append(name)  # a digest directory still being written: look again next time
                continue
            except OSError:
                errors += 1
                continue
            if stat.S_ISREG(data.st_mode):
                blobs += 1
                size += data.st_size
                counted.append(digest_key(name))
        return blobs, size, errors, counted, tuple(pending)


def digest_key(name: str) -> bytes:
    """KEY bytes naming a digest directory: its leading hex, or a hash of an odd name."""
    try:
        return bytes.fromhex(name[:2 * KEY]) if len(name) >= 2 * KEY else hashlib.blake2b(
            name.encode(), digest_size=KEY).digest()
    except ValueError:
        return hashlib.blake2b(name.encode(errors="surrogateescape"), digest_size=KEY).digest()


def _position(keys: bytes, key: bytes) -> int:
    """Index of the first record of the sorted ``keys`` not below ``key`` (binary search, no copies)."""
    lo, hi = 0, len(keys) // KEY
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid * KEY:(mid + 1) * KEY] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _insert(keys: bytes, placed: list[tuple[int, bytes]]) -> bytes:
    """``keys`` with each (position, key) of ``placed`` (sorted) inserted, still sorted."""
    parts, start = [], 0
    for at, key in placed:
        parts += (keys[start * KEY:at * KEY], key)
        start = at
    parts.append(keys[start * KEY:])
    return b"".join(parts)


def is_real_dir(parent: str, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(os.path.join(parent, name)).st_mode)
    except OSError:
        return False  # vanished: not counted

