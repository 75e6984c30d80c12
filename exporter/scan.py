"""Walks a Distribution filesystem store: blobs here, repositories and uploads in exporter.repositories.

Layout (under ``docker/registry/v2``)::

    blobs/<alg>/<2 hex>/<digest>/data
    repositories/<name, may be nested a/b/c>/{_manifests,_layers,_uploads/<id>/{data,startedat}}

Blob directories are content-addressed and never change in place, and a
2-hex prefix directory's mtime changes whenever a digest directory is added
or removed under it (and its ctime on a chmod). The scanner keeps one summary
per prefix directory, keyed by (inode, mtime, ctime), and on a rescan lists
again only prefix directories whose key changed. Because 1 % new blobs land
in nearly every prefix, a changed prefix is not even listed: inotify watches
on the prefix directories name the digest directories created since the last
scan, and only those are stat-ed. Which digests are already known is kept out
of the Python heap, in an ``Index``: one file per prefix directory of KEY
bytes per blob counted, read only when that prefix changed and extended when
it gains blobs; memory holds only the summaries (256 per algorithm), whatever
the store's size. An index file missing or not
matching its summary's checksum makes that prefix be measured in full.
Without inotify's names (a network filesystem, where other hosts' changes raise
no events, an overflow, no watches left) a changed prefix is listed
(names only, no stat) and again only digests not seen before are stat-ed. A
prefix that lost a digest (garbage collection) is measured again in full. A
change *inside* a digest directory (a ``data`` file truncated in place, which
the registry never does) leaves the prefix unchanged: a full verification
every ``verify_every`` seconds catches it.

Prefix directories are measured by ``concurrency`` threads at once (os.stat
and os.scandir release the GIL): a cold disk serves many metadata reads in
parallel where du has one in flight. The bound, and ``rate`` (files per second
across all threads), keep a scan from starving the registry.

Symlinks are never followed. A file that vanishes mid-scan (garbage
collection, a concurrent push) is simply not counted. A directory that
cannot be read is counted in ``errors`` and skipped.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
import weakref
import zlib
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import inotify, repositories
from .repositories import Uploads, subdirs

V2 = Path("docker", "registry", "v2")
KEY = 8  # bytes of a digest kept per blob, in the index files (not in memory)
RACY_SECONDS = 2.0  # a directory changed this recently may change again within the same mtime tick
CONCURRENCY = 4  # prefix directories measured at once by default (storage.scan_concurrency)
CHUNK = 2048  # digest directories listed, sorted by inode and stat-ed at a time: bounds a worker's memory
_SAFE = re.compile(r"[A-Za-z0-9_+-]{1,64}")  # no dot: "alg.prefix" names one prefix only


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
    """What one 2-hex prefix directory held when it was last listed (its digests are in the Index)."""

    key: tuple[int, int, int] | None  # (inode, mtime_ns, ctime_ns); None: list again next time
    blobs: int
    bytes: int
    errors: int
    check: int | None = None  # CRC-32 of its index file; None: none written, measure in full when it changes
    merged: int = 0  # keys at the start of the index file that are sorted; the rest were appended since
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
    """Holds a scan to ``rate`` files per second (0: no limit) across all its threads, sleeping in short naps."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self.sleep, self.clock = rate, sleep, clock
        self._start = clock()
        self._done = 0
        self._next = 64  # checking the clock every 64 files keeps the cost per file low
        self._lock = threading.Lock()

    def tick(self, n: int = 1) -> None:
        if self.rate <= 0:
            return
        with self._lock:  # held while sleeping: every worker waits until the walk is back under the rate
            self._done += n
            if self._done < self._next:
                return
            self._next = self._done + 64
            ahead = self._done / self.rate - (self.clock() - self._start)
            if ahead > 0:
                self.sleep(ahead)


class Index:
    """Each prefix directory's known digests, KEY bytes each, one file per prefix in ``directory``.

    ``directory`` None (no state directory) or unusable: a private temporary
    directory, removed on ``close`` or at exit. A file is replaced whole
    (write, rename) when measured in full, and the keys a rescan adds are
    appended (a rename costs more than the rest of a rescan) until they are
    many enough to be merged in. The CRC-32 returned by ``write`` and
    ``append`` and checked by ``read`` catches a file lost, truncated, torn
    or left by another process, so a wrong file costs a full measure of its
    prefix, never a wrong count. Not fsync-ed: a new process starts with a
    full scan and rewrites them all.
    """

    def __init__(self, directory: Path | None):
        self.warning = ""
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                self.directory, self._cleanup = directory, None
                return
            except OSError as err:
                self.warning = (f"scan index: cannot create {directory} ({err.strerror}), "
                                "kept in a temporary directory")
        self.directory = Path(tempfile.mkdtemp(prefix="dtr-sizing-exporter-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)

    def path(self, prefix: str) -> Path:
        alg, name = prefix.rsplit("/", 2)[-2:]
        if not (_SAFE.fullmatch(alg) and _SAFE.fullmatch(name)):
            alg, name = "x", hashlib.blake2b(os.fsencode(prefix), digest_size=8).hexdigest()
        return self.directory / f"{alg}.{name}"

    def read(self, prefix: str, check: int | None) -> bytes | None:
        """The keys written for ``prefix``, or None when missing, unreadable or not matching ``check``."""
        if check is None:
            return None
        try:
            keys = self.path(prefix).read_bytes()
        except OSError:
            return None
        return keys if zlib.crc32(keys) == check and len(keys) % KEY == 0 else None

    def write(self, prefix: str, keys: bytes) -> int | None:
        """Replace ``prefix``'s file with ``keys``; their CRC-32, or None when it could not be written."""
        target = self.path(prefix)
        temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            temp.write_bytes(keys)
            os.replace(temp, target)
        except OSError:
            temp.unlink(missing_ok=True)
            return None
        return zlib.crc32(keys)

    def append(self, prefix: str, keys: bytes, check: int) -> int | None:
        """Add ``keys`` to the end of ``prefix``'s file, whose CRC-32 is ``check``; the new CRC-32, or None."""
        try:
            fd = os.open(self.path(prefix), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if os.write(fd, keys) != len(keys):
                    return None
            finally:
                os.close(fd)
        except OSError:
            return None
        return zlib.crc32(keys, check)

    def drop(self, prefix: str) -> None:
        self.path(prefix).unlink(missing_ok=True)

    def close(self) -> None:
        if self._cleanup:
            self._cleanup()


class Scanner:
    """Scans one store, incrementally after the first time.

    ``progress`` is the number of files examined in the running scan, for a
    terminal progress line. ``index_dir`` holds the index files (see Index);
    ``concurrency`` prefix directories are measured at once (1: one after
    the other). One scan at a time.
    """

    def __init__(self, v2: Path, rate: float = 0.0, verify_every: float = 86400.0,
                 clock: Callable[[], float] = time.time, index_dir: Path | None = None,
                 concurrency: int = CONCURRENCY):
        self.v2 = v2
        self.rate = rate
        self.verify_every = verify_every
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.progress = 0
        self._lock = threading.Lock()  # for progress, added to by every worker
        self._index = Index(index_dir)
        self._prefixes: dict[str, Prefix] = {}
        self._last_full: float | None = None
        try:  # the new names' files beside the index
            names = self._index.directory.with_name(self._index.directory.name + ".inotify")
            self._journal: inotify.Journal | None = inotify.Journal(names)
        except OSError:
            self._journal = None  # out of inotify instances: listing changed prefixes still works
        self._batch = inotify.Batch()  # what inotify saw since the last scan, during one

    @property
    def warning(self) -> str:
        """A problem with the index directory (the scan is still exact), or ''."""
        return self._index.warning

    def close(self) -> None:
        """Stop watching, and remove a private index directory."""
        if self._journal:
            self._journal.close()
            self._journal = None
        self._index.close()

    def _watch(self, path: str) -> bool:
        # out of watches (or none): this prefix is listed when it changes
        return self._journal is not None and self._journal.watch(path)

    def scan(self, full: bool = False) -> Result:
        now = self.clock()
        full = full or self._last_full is None or not 0 <= now - self._last_full < self.verify_every
        throttle = Throttle(self.rate)
        self.progress = 0
        result = Result(full=full)
        if self._journal is not None:
            self._batch = self._journal.take()
        self._scan_blobs(result, throttle, full, now)
        self._batch = inotify.Batch()  # the names are no use past this scan
        repos = repositories.walk(self.v2 / "repositories", now, self._tick(throttle))
        result.repositories, result.uploads = repos.count, repos.uploads
        result.errors += repos.errors
        result.files_examined = self.progress
        if full:
            self._last_full = now
        return result

    # --- blobs -------------------------------------------------------------

    def _scan_blobs(self, result: Result, throttle: Throttle, full: bool, now: float) -> None:
        paths = [entry.path for alg in subdirs(self.v2 / "blobs", result) for entry in subdirs(alg.path, result)]
        # the prefix directories are stat-ed and watched here (a watch's number is kept: made on a worker, it
        # would be one of the objects outliving the walk in its heap, see _Packed); the listings and the
        # digests' stats go to the workers. In a rescan a changed prefix is a few stats, quicker here too.
        prefixes = [self._prefix(path, full, now, throttle) for path in paths]
        todo = [i for i, p in enumerate(prefixes) if callable(p)]  # those measured in full
        for i, prefix in zip(todo, self._map(lambda i: prefixes[i](), todo, full)):
            prefixes[i] = prefix
        seen: dict[str, Prefix] = {}
        for path, prefix in zip(paths, prefixes):
            if prefix is None:  # vanished between listing and stat
                continue
            if prefix is not self._prefixes.get(path):
                result.prefixes_changed += 1
            seen[path] = prefix
            result.blobs += prefix.blobs
            result.blob_bytes += prefix.bytes
            result.errors += prefix.errors
        for path in self._prefixes.keys() - seen.keys():  # prefixes removed since last time
            self._index.drop(path)
        self._prefixes = seen

    def _map(self, work: Callable[..., Prefix | None], items: list, full: bool) -> list[Prefix | None]:
        """``work`` on each item, ``concurrency`` at a time; its summaries are kept as numbers until all are done
        (see _Packed), and after a full walk made only once its garbage is collected."""
        packed = _Packed(len(items))

        def measure(at: int) -> None:
            packed.put(at, work(items[at]))
        if self.concurrency == 1 or len(items) < 2:
            for at in range(len(items)):
                measure(at)
        else:
            _parallel(measure, len(items), min(self.concurrency, len(items)))
        if full:  # the walk's garbage (its threads' cycles, freed tuples kept for reuse) is in its arenas too
            gc.collect()
        return [packed.get(at) for at in range(len(items))]

    def _prefix(self, path: str, full: bool, now: float, throttle: Throttle) -> Prefix | None | Callable:
        """The prefix's summary, or (when it must be listed) a function measuring it, for a worker."""
        st = _guarded(os.stat, path, follow_symlinks=False)
        if not isinstance(st, os.stat_result):
            return st  # vanished, or cannot be read
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        known = self._prefixes.get(path)
        if not full and known is not None and known.key == key and not known.pending:
            return known
        if now - st.st_mtime_ns / 1e9 < RACY_SECONDS or now - st.st_ctime_ns / 1e9 < RACY_SECONDS:
            key = None  # racy: measured again next time
        watched = self._watch(path)  # before listing, so nothing added meanwhile is missed
        if full or known is None or known.errors:
            return lambda: _guarded(self._full, path, key, watched, throttle)
        if known.watched and not self._batch.relist(path):  # inotify named what was added: a few stats, here
            grown = _guarded(self._grown, path, known, key, watched, throttle)
            return grown if grown is not None else lambda: _guarded(self._full, path, key, watched, throttle)
        return lambda: _guarded(self._relisted, path, known, key, watched, throttle)

    def _relisted(self, path: str, known: Prefix, key, watched: bool, throttle: Throttle) -> Prefix:
        return self._grown(path, known, key, watched, throttle) or self._full(path, key, watched, throttle)

    def _grown(self, path: str, known: Prefix, key, watched: bool, throttle: Throttle) -> Prefix | None:
        """``known`` plus the digests added since, stat-ing only those; None when it must be measured in full."""
        keys = self._index.read(path, known.check)
        if keys is None or len(keys) != known.blobs * KEY or known.merged > known.blobs:
            return None  # index file lost or not ours
        base = keys[:known.merged * KEY]
        added = {keys[i:i + KEY] for i in range(len(base), len(keys), KEY)}
        created = self._batch.created(path) if known.watched and not self._batch.relist(path) else None
        if created is not None:  # inotify named what was added: no listing at all
            found = {n: False for n in known.pending}
            found.update(created)
        else:
            found = _unknown(path, base, added)
            if found is None:
                return None  # something was removed
        new = []
        for name, is_dir in found.items():
            k = digest_key(name)
            at = _position(base, k)
            if base[at * KEY:(at + 1) * KEY] != k and k not in added and (is_dir or is_real_dir(path, name)):
                new.append(name)
        blobs, size, errors, counted, pending = self._measure(path, new, throttle)
        check, merged = known.check, known.merged
        if len(added) + blobs > max(64, merged // 16):  # merge the appended keys in: a sorted file again
            merged = known.blobs + blobs
            placed = sorted((_position(base, k), k) for k in added.union(_records(counted)))
            check = self._index.write(path, _insert(base, placed))
        elif counted:
            check = self._index.append(path, bytes(counted), check)
        return Prefix(None if errors else key, known.blobs + blobs, known.bytes + size, errors, check, merged,
                      pending, watched)

    def _full(self, path: str, key, watched: bool, throttle: Throttle) -> Prefix:
        blobs = size = errors = 0
        counted = bytearray()
        pending: tuple[str, ...] = ()
        with os.scandir(path) as listing:  # d_type: no stat per entry, symlinks not followed
            dirs = ((d.inode(), d.name) for d in listing if d.is_dir(follow_symlinks=False))
            while chunk := [d for _, d in zip(range(CHUNK), dirs)]:
                # in inode order, as du does: on a cold cache the inode table is read in sequence
                chunk.sort()
                b, s, e, c, p = self._measure(path, [name for _, name in chunk], throttle)
                blobs, size, errors, pending = blobs + b, size + s, errors + e, pending + p
                counted += c
        check = self._index.write(path, _sorted(counted))
        return Prefix(None if errors else key, blobs, size, errors, check, blobs, pending, watched)

    def _tick(self, throttle: Throttle) -> Callable[[], None]:
        def tick() -> None:
            self.progress += 1
            throttle.tick()
        return tick

    def _measure(self, prefix: str, names: list[str], throttle: Throttle):
        """(blobs, bytes, errors, keys of the blobs counted end to end, names without data) for digest
        directories."""
        blobs = size = errors = 0
        counted, pending = bytearray(), []
        for name in names:
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
                counted += digest_key(name)
        with self._lock:
            self.progress += len(names)
        return blobs, size, errors, counted, tuple(pending)


class _Packed:
    """Summaries measured during a walk, held as numbers in arrays until it is over.

    A Prefix made mid-walk lands among the walk's temporaries (listings, names, stat results) and, once they
    are freed, keeps the partly used obmalloc arenas they filled resident: a full scan of 1M blobs left 3.5
    MiB, 1.6 with this. Made after the walk from these numbers, the summaries go where the heap has room and
    the walk's arenas are given back.
    """

    PRESENT, KEYED, CHECKED, WATCHED = 1, 2, 4, 8  # flags: not None; key, check not None; watched

    def __init__(self, n: int):
        self.inodes = array("Q", bytes(8 * n))
        self.numbers = array("q", bytes(64 * n))  # flags, mtime_ns, ctime_ns, blobs, bytes, errors, check, merged
        self.pending: dict[int, tuple[str, ...]] = {}  # rare: a push in flight

    def put(self, at: int, prefix: Prefix | None) -> None:
        if prefix is None:
            return  # flags 0
        key, check = prefix.key or (0, 0, 0), prefix.check
        flags = (self.PRESENT | self.KEYED * (prefix.key is not None) | self.CHECKED * (check is not None)
                 | self.WATCHED * prefix.watched)
        self.inodes[at] = key[0]
        self.numbers[8 * at:8 * at + 8] = array("q", (flags, key[1], key[2], prefix.blobs, prefix.bytes,
                                                      prefix.errors, check or 0, prefix.merged))
        if prefix.pending:
            self.pending[at] = prefix.pending

    def get(self, at: int) -> Prefix | None:
        flags, mtime, ctime, blobs, size, errors, check, merged = self.numbers[8 * at:8 * at + 8]
        if not flags & self.PRESENT:
            return None
        return Prefix((self.inodes[at], mtime, ctime) if flags & self.KEYED else None, blobs, size, errors,
                      check if flags & self.CHECKED else None, merged, self.pending.get(at, ()),
                      bool(flags & self.WATCHED))


def _parallel(work: Callable[[int], None], n: int, threads: int) -> None:
    """``work(i)`` for each i below ``n`` on ``threads`` daemon threads; the first error is raised once all
    stopped. Not a ThreadPoolExecutor: the interpreter joins its workers at exit, so SIGTERM during the
    first scan of a big store (or a scan hung on a dead mount) would wait for the walk to end."""
    todo, lock, failed = iter(range(n)), threading.Lock(), []

    def run() -> None:
        while not failed:
            with lock:
                at = next(todo, None)
            if at is None:
                return
            try:
                work(at)
            except BaseException as err:  # noqa: BLE001 - raised on the calling thread below
                failed.append(err)
    workers = [threading.Thread(target=run, name=f"scan_{k}", daemon=True) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failed:
        raise failed[0]


def _records(keys: bytes | bytearray) -> list[bytes]:
    return [bytes(keys[i:i + KEY]) for i in range(0, len(keys), KEY)]


def _sorted(keys: bytearray) -> bytes:
    """KEY-byte records sorted, through a list of ints: half the memory of one of bytes objects."""
    ints = array("Q", sorted(_numbers(keys)))  # KEY == 8: one unsigned 64-bit integer a record
    if sys.byteorder == "little":
        ints.byteswap()  # back to the big-endian bytes
    return ints.tobytes()


def _guarded(measure: Callable, *args, **kwargs):
    """``measure(...)``; None when the prefix vanished meanwhile, an error summary when it cannot be read."""
    try:
        return measure(*args, **kwargs)
    except FileNotFoundError:
        return None
    except OSError:
        return Prefix(None, 0, 0, 1)


def _unknown(path: str, base: bytes, added: set[bytes]) -> dict[str, bool] | None:
    """Entries of ``path`` (name: a directory, by d_type) whose key is neither in ``base`` (sorted) nor in
    ``added`` (the keys appended since the index was last sorted), or None when one of them is gone. The listing is streamed and each
    name looked up among the keys as numbers: a listing and a set of the keys would be 10 MiB a worker for a
    prefix of 40,000 digests (10M blobs), every time it changed."""
    known = _numbers(base)
    found, present = {}, 0
    with os.scandir(path) as listing:
        for entry in listing:
            key = digest_key(entry.name)
            k = int.from_bytes(key, "big")
            at = bisect_left(known, k)
            if (at < len(known) and known[at] == k) or key in added:
                present += 1
            else:
                found[entry.name] = entry.is_dir(follow_symlinks=False)  # d_type: no lstat of each new name
    return None if present < len(known) + len(added) else found


def _numbers(keys: bytes | bytearray) -> array:
    """KEY-byte records as the unsigned numbers they spell (big-endian): sorted records stay sorted (bisect)."""
    out = array("Q")
    out.frombytes(keys)
    if sys.byteorder == "little":
        out.byteswap()
    return out


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

