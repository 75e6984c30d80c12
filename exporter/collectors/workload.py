"""What the registry's own workload asks of this node: the hot set, the cache it can have, its memory.

Emits dtr_storage_hot_bytes{storage, window="1h"|"24h"}, dtr_storage_hot_blobs{storage, window},
dtr_storage_hot_method{storage, method, accuracy} (always 1), dtr_storage_hot_covered_seconds{storage},
dtr_page_cache_available_bytes, dtr_registry_memory_room_bytes (only under a memory limit),
dtr_registry_process_memory_bytes, dtr_page_cache_file_hit_ratio{scope="registry"}.

The hot set comes from exporter/hotset.py: the registry's request log (``registry.log_path``,
else the registry container's json-file log Docker names in ``Found.registry_log``), else the
store's atimes, else nothing; ``method`` says which and ``accuracy`` how far to trust it
(docs/workload.md). The atime walk stats every blob, so it runs at most once per storage scan
interval. Where this exporter's pagecache collector falls back to mincore() (kernels before 6.5
without cachestat), its mapping of blob files moves their atime: the atime figure is then an
upper bound. The page cache available is /proc/meminfo less what cannot be reclaimed, capped by
the registry cgroup's room (exporter/recommend.py, exporter/cgroups.py). The file hit ratio is
1 - storage reads / blob bytes served over the last WINDOW: unlike the pagecache collector's rchar
ratio it does not count a push's socket reads as hits; it needs the log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import cachestat, cgroups, hotset, procfs, recommend
from ..families import gauge
from ..processes import anon_bytes, io_counters, registry_pids
from ..scan import resolve_v2
from ..storage_id import storage_id
from ..window import Window
from . import NOTHING, Found, Spec

SPEC = Spec(True, 60, 60, "the registry's request log (--registry.log-path or its container's json-file log), "
            "blob atimes, /proc/meminfo, the registry's cgroup and /proc/<pid>/{status,io}", follows_store=True)

WINDOW = 300.0  # the file hit ratio's window, as the pagecache collector's rchar ratio
MIN_SERVED = 1 << 20  # below a MiB served in the window the ratio says nothing


@dataclass(frozen=True)
class WorkloadReading:
    storage: str | None = None
    hot: hotset.HotSet | None = None  # None without a store
    accuracy: str = "none"  # exact | lower_bound | upper_bound | none
    page_cache_available_bytes: int | None = None
    memory_room_bytes: int | None = None  # the registry cgroup's limit less its anonymous memory
    process_memory_bytes: int | None = None  # RssAnon of DTR's container processes and the registry's
    processes: int = 0
    file_hit_ratio: float | None = None
    file_hit_window_seconds: float = 0.0


def accuracy_of(hot: hotset.HotSet, mincore_maps_blobs: bool) -> str:
    """How far ``hot`` can be trusted: exact, lower_bound, upper_bound or none (docs/workload.md)."""
    if hot.method == hotset.LOG:
        return "exact" if hot.covered_seconds >= hotset.HORIZON else "lower_bound"
    if hot.method == hotset.ATIME:
        if mincore_maps_blobs:
            return "upper_bound"
        return "exact" if "1h" in hot.windows else "lower_bound"
    return "none"


class WorkloadCollector:
    name = "workload"

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        self._source: hotset.HotSetSource | None = None
        self._followed: tuple[Path, Path | None] | None = None
        self._window = Window(WINDOW)
        self._pids: tuple[int, ...] = ()

    def collect(self, found: Found = NOTHING) -> WorkloadReading:
        pids = self._registry_pids(found)
        meminfo = procfs.parse_meminfo(procfs.read(self.ctx.procfs, "meminfo"))
        if "MemTotal" not in meminfo:
            raise ValueError("meminfo lacks 'MemTotal'")
        rooms = [r for pid in pids if (r := cgroups.memory_room(self.ctx.procfs, self.ctx.sysfs, pid)) is not None]
        room = min(rooms, default=None)
        own = [b for pid in {*pids, *(p.pid for p in found.dtr_processes if p.pid)}
               if (b := anon_bytes(self.ctx.procfs, pid)) is not None]
        reading = WorkloadReading(page_cache_available_bytes=recommend.page_cache_available_bytes(meminfo, room),
                                  memory_room_bytes=room, process_memory_bytes=sum(own) if own else None,
                                  processes=len(pids))
        root = found.storage_path
        v2 = resolve_v2(Path(root)) if root is not None else None
        if v2 is None:
            return reading
        hot = self._hot(v2, found)
        ratio, span = self._file_hit_ratio(pids, hot)
        mincore = self.config.collectors["pagecache"].enabled and not cachestat.supported()
        return WorkloadReading(storage_id(Path(root), self.ctx.procfs, self.ctx.rootfs), hot,
                               accuracy_of(hot, mincore), reading.page_cache_available_bytes, room,
                               reading.process_memory_bytes, len(pids), ratio, span)

    def _registry_pids(self, found: Found) -> list[int]:
        """The registry container's pid Docker names, else the configured names and pids."""
        docker = [p.pid for p in found.dtr_processes if p.component == "registry" and p.pid]
        if docker:
            return docker
        return registry_pids(self.ctx.procfs, self.config.registry_process_names, self.config.registry_pids)

    def _hot(self, v2: Path, found: Found) -> hotset.HotSet:
        configured = self.config.registry_log_path
        log = Path(configured) if configured else found.registry_log
        if self._followed != (v2, log):  # a new store or log: its reads do not continue the old ones
            walk_every = self.config.collectors["storage"].interval
            self._source = hotset.HotSetSource(v2, log, walk_every=walk_every)
            self._followed = (v2, log)
            self._window = Window(WINDOW)
        return self._source.measure()

    def _file_hit_ratio(self, pids: list[int], hot: hotset.HotSet) -> tuple[float | None, float]:
        if hot.method != hotset.LOG:
            return None, 0.0
        read, readable = 0, []
        for pid in pids:
            try:
                read += io_counters(self.ctx.procfs, pid).get("read_bytes", 0)
                readable.append(pid)
            except OSError:  # exited, or not ours to read: the pagecache collector reports that
                continue
        if tuple(readable) != self._pids:  # other processes: their counters do not continue the old ones
            self._window, self._pids = Window(WINDOW), tuple(readable)
        if not readable:
            return None, 0.0
        self._window.add(time.monotonic(), (self._source.log.served_bytes(), read))
        delta = self._window.delta()
        if not delta or delta[1][0] < MIN_SERVED:
            return None, delta[0] if delta else 0.0
        return recommend.file_hit_ratio(int(delta[1][0]), int(delta[1][1])), delta[0]


COLLECTOR = WorkloadCollector


def families(r: WorkloadReading) -> Iterator[Metric]:
    if r.storage is not None and r.hot is not None:
        store = {"storage": r.storage}
        hot_bytes = GaugeMetricFamily("dtr_storage_hot_bytes", "Distinct blob bytes the registry read in the "
                                      "window (the hot set); method in dtr_storage_hot_method.",
                                      labels=["storage", "window"])
        hot_blobs = GaugeMetricFamily("dtr_storage_hot_blobs", "Distinct blobs the registry read in the window.",
                                      labels=["storage", "window"])
        for window, w in sorted(r.hot.windows.items()):
            hot_bytes.add_metric([r.storage, window], w.bytes)
            hot_blobs.add_metric([r.storage, window], w.blobs)
        yield from (hot_bytes, hot_blobs)
        yield gauge("dtr_storage_hot_method", "The hot set's method (log, atime, none) and accuracy (exact, "
                    "lower_bound, upper_bound, none); always 1.", 1,
                    {**store, "method": r.hot.method, "accuracy": r.accuracy})
        yield gauge("dtr_storage_hot_covered_seconds", "How far back the hot set's method sees; a window longer "
                    "than this is a lower bound.", r.hot.covered_seconds, store)
    if r.page_cache_available_bytes is not None:
        yield gauge("dtr_page_cache_available_bytes", "Page cache the registry can have: MemTotal less anonymous, "
                    "shared, kernel and huge-page memory, capped by the registry cgroup's room.",
                    r.page_cache_available_bytes)
    if r.memory_room_bytes is not None:
        yield gauge("dtr_registry_memory_room_bytes", "The registry cgroup's least memory limit (itself and its "
                    "ancestors) less the anonymous memory charged there.", r.memory_room_bytes)
    if r.process_memory_bytes is not None:
        yield gauge("dtr_registry_process_memory_bytes", "Own memory (RssAnon) of DTR's container processes and the "
                    "registry processes: the processes' part of the recommended memory.", r.process_memory_bytes)
    if r.file_hit_ratio is not None:
        yield gauge("dtr_page_cache_file_hit_ratio", "Share of blob bytes served from the page cache over the last "
                    "window: 1 - read_bytes / blob bytes served (request log); pushes do not count.",
                    r.file_hit_ratio, {"scope": "registry"})
