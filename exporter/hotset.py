"""The hot set: distinct blob bytes the registry read in the last hour and day.

Methods, best first (docs/workload.md states each one's accuracy):

- ``log``: the registry's request log (exporter/accesslog.py). Every blob GET
  answered 200/206 marks its digest read at the line's time; the last read
  time and size of each digest are kept packed (LastReads, 20 bytes a digest,
  pruned beyond 24 h), the size from one stat of the blob's data file when
  the digest is first seen (a digest's content never changes). Exact for
  both windows once the log has been followed for 24 h; before that the
  24 h figure is a lower bound and ``covered_seconds`` says how far back it
  sees.
- ``atime``: a walk of the store's data files. Under ``strictatime`` atime is
  the last read: both windows. Under ``relatime`` (most mounts) the kernel
  refreshes atime at the first read after a write and then at most once per
  24 h: a blob whose atime is after its mtime and within 24 h was read within
  24 h, so only the 24 h window is known, as a lower bound; the 1 h one is
  not. Under ``noatime`` it says nothing: unavailable.
- ``none``: neither; the reason says why.

The mount's atime policy comes from ``statvfs().f_flag`` of the store
itself rather than the mount table: it is the flag of the mount the path is
reached through, bind mounts included.
"""

from __future__ import annotations

import os
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from itertools import chain, compress
from pathlib import Path

from .accesslog import APP, LogTail, blob_path, reads

WINDOWS = {"1h": 3600, "24h": 86400}
HORIZON = WINDOWS["24h"]
LOG, ATIME, NONE = "log", "atime", "none"


@dataclass(frozen=True)
class Window:
    bytes: int
    blobs: int


@dataclass(frozen=True)
class HotSet:
    method: str  # LOG, ATIME or NONE
    reason: str  # why this method: what made the better ones unusable ("" for the log)
    windows: dict[str, Window]  # "1h", "24h": only the windows this method measures
    covered_seconds: float  # how far back the method sees; a window longer than this is a lower bound
    unsized: int = 0  # digests read whose data file is not in this store (deleted since, another store)


def atime_policy(flags: int) -> str:
    """``noatime``, ``relatime`` or ``strictatime`` from ``statvfs().f_flag``."""
    if flags & os.ST_NOATIME:
        return "noatime"
    return "relatime" if flags & os.ST_RELATIME else "strictatime"


class LastReads:
    """Each digest's last read time, and its size, for the last 24 h, packed in 20 bytes a digest.

    A dict of digest -> time beside one of digest -> size took about 200 bytes a digest:
    10 MiB for a 50,000-blob day on a 1M-blob store, five times the workload budget
    (docs/performance.md). Here three parallel arrays sorted by the digest's first 8 bytes
    (a collision among a few million random digests is below 1e-6) hold the time and the
    size; digests first read since the last merge wait in a small dict. Sizes are a stat of
    the data file when a digest is first seen (its content never changes), -1 when it has
    none in this store.
    """

    # new digests held unpacked before a merge (about 200 bytes each meanwhile); 1,024 left 0.3 MiB
    # more resident after the first pass: small objects outliving the parsing pin its freed heap
    MERGE = 256

    def __init__(self, v2: Path):
        self.v2 = v2
        self.keys = array("Q")  # sorted digest prefixes
        self.times = array("I")  # unix seconds: fits until 2106
        self.sizes = array("q")
        self.fresh: dict[int, list[int]] = {}  # prefix -> [time, size], not yet merged
        self.oldest: int | None = None  # the earliest read seen

    def note(self, digest: bytes, when: int) -> None:
        key = int.from_bytes(digest[:8], "big")
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            self.times[i] = max(self.times[i], when)
        elif key in self.fresh:
            entry = self.fresh[key]
            entry[0] = max(entry[0], when)
        else:
            self.fresh[key] = [when, _size(self.v2, digest)]
            if len(self.fresh) >= self.MERGE:
                self._merge()
        self.oldest = when if self.oldest is None else min(self.oldest, when)

    def last_read(self, digest: bytes) -> int | None:
        key = int.from_bytes(digest[:8], "big")
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return self.times[i]
        return self.fresh[key][0] if key in self.fresh else None

    def prune(self, now: float) -> None:
        """Merges the new digests and drops those last read more than 24 h before ``now``."""
        self._merge()
        keep = bytes(t >= now - HORIZON for t in self.times)
        if keep.count(0):
            self.keys, self.times, self.sizes = (array(a.typecode, compress(a, keep))
                                                 for a in (self.keys, self.times, self.sizes))

    def window(self, now: float, seconds: int) -> tuple[Window, int]:
        """(bytes and blobs read within ``seconds`` before ``now``, digests without a data file)."""
        cutoff = now - seconds
        total = blobs = unsized = 0
        for when, size in chain(zip(self.times, self.sizes), self.fresh.values()):
            if when < cutoff:
                continue
            if size < 0:
                unsized += 1
            else:  # one at a time, not a list of sizes: 36,000 ints fragment the heap they leave
                total += size
                blobs += 1
        return Window(total, blobs), unsized

    def _merge(self) -> None:
        # into arrays made at their final length, copied through memoryviews: growing them
        # entry by entry, merge after merge, left holes in the heap
        if not self.fresh:
            return
        fresh = sorted(self.fresh.items())
        length = len(self.keys) + len(fresh)
        merged = [array(a.typecode, [0]) * length for a in (self.keys, self.times, self.sizes)]
        with memoryview(self.keys) as k, memoryview(self.times) as t, memoryview(self.sizes) as s, \
                memoryview(merged[0]) as nk, memoryview(merged[1]) as nt, memoryview(merged[2]) as ns:
            done = 0  # old entries copied
            for n, (key, (when, size)) in enumerate(fresh):
                i = bisect_left(self.keys, key, done)
                nk[done + n:i + n], nt[done + n:i + n], ns[done + n:i + n] = k[done:i], t[done:i], s[done:i]
                nk[i + n], nt[i + n], ns[i + n] = key, when, size
                done = i
            n = len(fresh)
            nk[done + n:], nt[done + n:], ns[done + n:] = k[done:], t[done:], s[done:]
        self.keys, self.times, self.sizes = merged
        self.fresh.clear()


def _size(v2: Path, digest: bytes) -> int:
    try:
        return os.stat(blob_path(v2, digest)).st_size
    except OSError:
        return -1


class LogHotSet:
    """The log method: follows the log, keeps the last reads, counts the bytes served."""

    def __init__(self, log: Path, v2: Path, clock=time.time):
        self.tail = LogTail(log)
        self.reads = LastReads(v2)
        self.served = {APP: 0, "access": 0}  # bytes of blob GETs, per kind of line (never summed)
        self.started = clock()

    def update(self) -> None:
        """Reads the lines written since the last call; raises OSError when the log cannot be read."""
        for chunk in self.tail.chunks():  # a chunk at a time: a 64 MiB backlog is never held whole
            for read in reads(chunk):
                self.reads.note(read.digest, read.time)
                self.served[read.kind] += read.written

    def served_bytes(self) -> int:
        """Bytes of blobs served since the exporter started following: app lines when the log has them."""
        return self.served[APP] or self.served["access"]

    def measure(self, now: float) -> HotSet:
        self.reads.prune(now)
        windows, unsized = {}, 0
        for name, seconds in WINDOWS.items():
            windows[name], unsized = self.reads.window(now, seconds)
        since = self.started if self.reads.oldest is None else min(self.started, self.reads.oldest)
        return HotSet(LOG, "", windows, now - since, unsized)


def atime_hot(v2: Path, now: float, strict: bool) -> dict[str, Window]:
    """Blobs read since written, by atime: both windows under strictatime, only 24 h under relatime."""
    wanted = WINDOWS if strict else {"24h": WINDOWS["24h"]}
    sums = {name: [0, 0] for name in wanted}
    for data in _data_files(v2):
        try:
            st = os.stat(data)
        except OSError:
            continue
        if st.st_atime <= st.st_mtime:
            continue  # not read since written
        for name, seconds in wanted.items():
            if st.st_atime >= now - seconds:
                sums[name][0] += st.st_size
                sums[name][1] += 1
    return {name: Window(*v) for name, v in sums.items()}


def _data_files(v2: Path):
    for alg in _subdirs(os.path.join(v2, "blobs")):
        for prefix in _subdirs(alg):
            for digest in _subdirs(prefix):
                yield os.path.join(digest, "data")


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


class HotSetSource:
    """The best method that works now, falling back visibly: log, else atime, else none.

    The log is retried on every call, so a log that becomes readable takes
    over again. The atime walk stats every blob: it runs at most once per
    ``walk_every`` seconds (the storage scan's interval), and the calls between
    answer its last result.
    """

    def __init__(self, v2: Path, log: Path | None, clock=time.time, walk_every: float = 0.0):
        self.v2, self.clock, self.walk_every = Path(v2), clock, walk_every
        self.log = LogHotSet(log, self.v2, clock) if log is not None else None
        self._walked: tuple[float, HotSet] | None = None  # (when, the last atime walk's answer)

    def measure(self) -> HotSet:
        now = self.clock()
        if self.log is None:
            why = "no registry log configured"
        else:
            try:
                self.log.update()
                return self.log.measure(now)
            except OSError as err:
                self.log.tail.close()
                why = f"registry log {self.log.tail.path}: {err.strerror or err}"
        try:
            policy = atime_policy(os.statvfs(self.v2).f_flag)
        except OSError as err:
            return HotSet(NONE, f"{why}; store {self.v2}: {err.strerror or err}", {}, 0.0)
        if policy == "noatime":
            return HotSet(NONE, f"{why}; store mounted noatime, so atime says nothing", {}, 0.0)
        if self._walked is None or now - self._walked[0] >= self.walk_every or now < self._walked[0]:
            windows = atime_hot(self.v2, now, policy == "strictatime")
            note = "" if policy == "strictatime" else ", 24 h only (relatime refreshes atime once a day)"
            self._walked = now, HotSet(ATIME, f"{why}; store mounted {policy}{note}", windows, float(HORIZON))
        return self._walked[1]
