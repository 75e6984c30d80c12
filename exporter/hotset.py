"""The hot set: distinct blob bytes the registry read in the last hour and day.

Methods, best first (docs/workload.md states each one's accuracy):

- ``log``: the registry's request log (exporter/accesslog.py). Every blob GET
  answered 200/206 marks its digest read at the line's time; the last read
  time and size of each digest are kept in a SQLite table off the heap
  (LastReads, pruned beyond 24 h), the size from one stat of the blob's data file when
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
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
    """Each digest's last read time, and its size, for the last 24 h, in a SQLite table.

    In the heap, even packed in 20 bytes a digest, this grew with the day's distinct reads:
    3 MiB for the 150,000 of a 3M-blob store in the soak, 10 MiB at 10M (docs/performance.md).
    Here it is a table in SQLite's private temporary database, which spills to a file once
    past its page cache (a file nobody else sees, deleted on exit: the log is read again at
    start anyway). Rows are keyed by the digest's first 8 bytes (a collision among a few
    million random digests is below 1e-6). Digests read since the last merge wait in a small
    dict and go in with one transaction; sizes are a stat of the data file when a digest is
    first seen (its content never changes), -1 when it has none in this store.
    """

    MERGE = 256  # digests held in the dict before a merge (about 200 bytes each meanwhile)
    _PRAGMAS = ("journal_mode=OFF", "synchronous=OFF", "cache_size=-512", "temp_store=FILE")

    def __init__(self, v2: Path):
        self.v2 = v2
        # one collector run at a time uses it, from whichever thread the sampler gives that run
        self.db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        for pragma in self._PRAGMAS:
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE reads (key INTEGER PRIMARY KEY, last INTEGER NOT NULL, size INTEGER NOT NULL)")
        self.fresh: dict[int, list] = {}  # key -> [time, digest], not yet merged
        self.oldest: int | None = None  # the earliest read seen

    def note(self, digest: bytes, when: int) -> None:
        key = int.from_bytes(digest[:8], "big", signed=True)  # SQLite's integers are signed 64-bit
        entry = self.fresh.get(key)
        if entry is not None:
            entry[0] = max(entry[0], when)
        else:
            self.fresh[key] = [when, digest]
            if len(self.fresh) >= self.MERGE:
                self._merge()
        self.oldest = when if self.oldest is None else min(self.oldest, when)

    def last_read(self, digest: bytes) -> int | None:
        self._merge()
        row = self.db.execute("SELECT last FROM reads WHERE key = ?",
                              (int.from_bytes(digest[:8], "big", signed=True),)).fetchone()
        return row[0] if row else None

    def prune(self, now: float) -> None:
        """Merges the new digests and drops those last read more than 24 h before ``now``."""
        self._merge()
        self.db.execute("DELETE FROM reads WHERE last < ?", (now - HORIZON,))

    def window(self, now: float, seconds: int) -> tuple[Window, int]:
        """(bytes and blobs read within ``seconds`` before ``now``, digests without a data file)."""
        self._merge()
        total, blobs, unsized = self.db.execute(
            "SELECT coalesce(sum(CASE WHEN size >= 0 THEN size END), 0), coalesce(sum(size >= 0), 0), "
            "coalesce(sum(size < 0), 0) FROM reads WHERE last >= ?", (now - seconds,)).fetchone()
        return Window(total, blobs), unsized

    def _merge(self) -> None:
        # plain SQL that SQLite 3.7 (RHEL 7) runs too: no UPSERT, lists of bound values under its 999
        if not self.fresh:
            return
        keys = list(self.fresh)
        known = set()
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            query = f"SELECT key FROM reads WHERE key IN ({','.join('?' * len(part))})"
            known.update(key for (key,) in self.db.execute(query, part))
        self.db.execute("BEGIN")
        self.db.executemany("UPDATE reads SET last = max(last, ?) WHERE key = ?",
                            ((self.fresh[key][0], key) for key in known))
        self.db.executemany("INSERT INTO reads VALUES (?, ?, ?)",
                            ((key, when, _size(self.v2, digest))
                             for key, (when, digest) in self.fresh.items() if key not in known))
        self.db.execute("COMMIT")
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


def _subdirs(path: str) -> Iterator[str]:
    """Real subdirectories of ``path``, streamed: a prefix's listing is 40,000 paths (8 MiB) at 10M blobs."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    yield entry.path
    except OSError:
        return


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
