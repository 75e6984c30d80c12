"""How much of the image store sits in the page cache, and how often the registry reads from it.

Emits dtr_storage_page_cache_bytes{storage}, dtr_storage_page_cache_error_bytes{storage},
dtr_storage_page_cache_sampled_ratio{storage}, dtr_page_cache_hit_ratio{scope="registry"},
dtr_registry_processes.

Resident bytes: cachestat() (or mincore) on the blob ``data`` files of a
random choice of 2-hex prefix directories, at least MIN_PREFIXES and until
SAMPLE_FILES files, at most PER_PREFIX random files in each; each prefix's
figure is scaled by its files over those measured, the sum by the prefixes
in the store over those measured. Digests are uniformly spread, so this
two-stage sample is unbiased; its standard error is estimated from the
spread between the measured prefixes' figures (the usual ultimate-cluster
estimate). With few blobs every file is measured and the figure is exact.

Hit ratio: over the last WINDOW seconds, 1 - read_bytes / rchar summed over
the registry processes' /proc/<pid>/io (read_bytes: what they caused to be
read from storage; rchar: what their read() calls returned).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import cachestat
from ..families import gauge
from ..processes import io_counters, registry_pids
from ..repositories import subdirs
from ..scan import resolve_v2
from ..storage_id import storage_id
from ..window import Window
from . import NOTHING, Found, PartialReading, Spec

SPEC = Spec(True, 60, 30, "cachestat() over blob files, /proc/<pid>/io of the registry processes",
            follows_store=True)

SAMPLE_FILES = 4000
MIN_PREFIXES = 8
PER_PREFIX = 256  # files measured at most per prefix directory (a random subset of larger ones)
WINDOW = 300.0
MIN_READ = 1 << 20  # below a MiB read in the window the ratio says nothing


@dataclass(frozen=True)
class PagecacheReading:
    storage: str | None = None
    detail: str = ""
    method: str | None = None  # cachestat | mincore | None (neither usable)
    resident_bytes: float | None = None  # blob bytes in the page cache (estimated when sampled)
    resident_error_bytes: float | None = None  # standard error of that estimate, 0 when measured in full
    sampled_ratio: float = 0.0  # share of prefix directories measured
    hit_ratio: float | None = None  # share of the registry's reads served from cache over the window
    hit_window_seconds: float = 0.0
    processes: int = 0  # registry processes found


class PagecacheCollector:
    name = "pagecache"

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        self.window = Window(WINDOW)
        self._pids: tuple[int, ...] = ()
        self._method: tuple[Path, str | None] | None = None
        self._random = random.Random()

    def collect(self, found: Found = NOTHING) -> PagecacheReading:
        problems: list[str] = []
        hit, span, processes = self._hit_ratio(problems)
        root = found.storage_path
        v2 = resolve_v2(Path(root)) if root is not None else None
        if v2 is None:
            detail = "no storage path" if root is None else f"{root}: not a registry store"
            reading = PagecacheReading(detail=detail, hit_ratio=hit, hit_window_seconds=span, processes=processes)
        else:
            reading = self._resident(v2, storage_id(Path(root), self.ctx.procfs, self.ctx.rootfs),
                                     hit, span, processes)
        if problems:
            raise PartialReading(reading, "; ".join(problems))
        return reading

    # --- hit ratio ------------------------------------------------------------

    def _hit_ratio(self, problems: list[str]) -> tuple[float | None, float, int]:
        pids = registry_pids(self.ctx.procfs, self.config.registry_process_names, self.config.registry_pids)
        rchar = read = 0
        readable = []
        for pid in pids:
            try:
                io = io_counters(self.ctx.procfs, pid)
            except FileNotFoundError:
                continue  # exited
            except PermissionError:
                problems.append(f"/proc/{pid}/io: permission denied (needs the registry's uid or CAP_SYS_PTRACE)")
                continue
            readable.append(pid)
            rchar += io.get("rchar", 0)
            read += io.get("read_bytes", 0)
        if tuple(readable) != self._pids:  # other processes: their counters do not continue the old ones
            self.window = Window(WINDOW)
            self._pids = tuple(readable)
        if not readable:
            return None, 0.0, len(pids)
        self.window.add(time.monotonic(), (rchar, read))
        delta = self.window.delta()
        if not delta or delta[1][0] < MIN_READ:
            return None, delta[0] if delta else 0.0, len(pids)
        # readahead can make read_bytes exceed what read() returned: clamp
        return min(1.0, max(0.0, 1 - delta[1][1] / delta[1][0])), delta[0], len(pids)

    # --- resident bytes ---------------------------------------------------------

    def _probe(self, v2: Path, sample: str) -> str | None:
        if self._method is None or self._method[0] != v2:
            self._method = (v2, cachestat.probe(sample))
        return self._method[1]

    def _resident(self, v2: Path, sid: str, hit, span, processes) -> PagecacheReading:
        prefixes = []
        blobs = v2 / "blobs"
        for alg in subdirs(blobs):
            prefixes.extend(e.path for e in subdirs(alg.path))
        self._random.shuffle(prefixes)
        totals: list[int] = []
        files = 0
        method = None
        for prefix in prefixes:
            if len(totals) >= MIN_PREFIXES and files >= SAMPLE_FILES:
                break
            cached = 0
            chosen, listed = self._choose(prefix)
            scale = listed / len(chosen) if chosen else 0.0
            for digest in chosen:
                data = os.path.join(digest, "data")
                try:
                    if method is None:
                        method = self._probe(v2, data)
                        if method is None:
                            return PagecacheReading(sid, "neither cachestat nor mincore can read the blob files "
                                                    "(needs root, their owner, or write access)",
                                                    hit_ratio=hit, hit_window_seconds=span, processes=processes)
                    cached += cachestat.resident_bytes(data, method)[0]
                except OSError:
                    continue  # vanished, a symlink, or no data yet
                files += 1
            totals.append(cached * scale)
        n, total = len(totals), len(prefixes)
        if n == 0:
            return PagecacheReading(sid, "no blobs", method, 0, 0, 1.0, hit, span, processes)
        estimate = sum(totals) * total / n
        error = 0.0
        if 1 < n < total:  # standard error of a total from a simple random sample of clusters
            mean = sum(totals) / n
            variance = sum((t - mean) ** 2 for t in totals) / (n - 1)
            error = total * math.sqrt((1 - n / total) * variance / n)
        return PagecacheReading(sid, "", method, estimate, error, n / total, hit, span, processes)

    def _choose(self, prefix: str) -> tuple[list[str], int]:
        """(PER_PREFIX of the prefix's digest directories drawn uniformly, how many it has), from its listing
        streamed (reservoir sampling): a whole listing is 40,000 paths, 8 MiB, at 10M blobs, and this runs
        every minute. Plain strings: a Path per digest directory was 90 % of this collector's CPU at 1M."""
        chosen: list[str] = []
        listed = 0
        try:
            with os.scandir(prefix) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    listed += 1
                    if len(chosen) < PER_PREFIX:
                        chosen.append(entry.path)
                    elif (at := self._random.randrange(listed)) < PER_PREFIX:
                        chosen[at] = entry.path
        except OSError:
            return [], 0  # vanished or unreadable: as an empty prefix
        return chosen, listed


COLLECTOR = PagecacheCollector


def families(r: PagecacheReading) -> Iterator[Metric]:
    if r.storage is not None and r.resident_bytes is not None:
        store = {"storage": r.storage}
        yield gauge("dtr_storage_page_cache_bytes", f"Blob bytes resident in the page cache ({r.method}; "
                    "estimated from a sample of prefix directories on large stores).", r.resident_bytes, store)
        if r.resident_error_bytes is not None:
            yield gauge("dtr_storage_page_cache_error_bytes", "Standard error of dtr_storage_page_cache_bytes "
                        "(0 when every blob was measured).", r.resident_error_bytes, store)
        yield gauge("dtr_storage_page_cache_sampled_ratio", "Share of prefix directories measured for "
                    "dtr_storage_page_cache_bytes.", r.sampled_ratio, store)
    if r.hit_ratio is not None:
        yield gauge("dtr_page_cache_hit_ratio", "Share of reads served from the page cache over the last window: "
                    "1 - read_bytes/rchar of /proc/<pid>/io.", r.hit_ratio, {"scope": "registry"})
    yield GaugeMetricFamily("dtr_registry_processes", "Registry processes found by name or pid.",
                            value=r.processes)
