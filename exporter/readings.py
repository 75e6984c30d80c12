"""Typed questions about a snapshot's readings, for sizing: the one place outside
exporter/collectors/ that knows the fields of a collector's reading.

Each accessor answers None when the collector has no reading (disabled, not run yet,
failed). A test (tests/unit/test_boundaries.py) keeps other modules from reaching
into readings by attribute name.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple


class Free(NamedTuple):
    bytes: float
    where: str  # "storage /var/lib/registry"


class Inodes(NamedTuple):
    files: int  # 0: the filesystem sets no limit
    free: int
    fstype: str
    mountpoint: str


class DeviceBusy(NamedTuple):
    ratio: float | None  # None until two samples
    devices: tuple[str, ...]
    network_fstype: str | None  # the store's fstype when it is a network filesystem


class Forecast(NamedTuple):
    seconds: float | None  # None unknown, math.inf not growing
    detail: str  # why unknown


class Share(NamedTuple):
    repository: str  # "(other)": the repositories below the top ones, summed
    bytes: int
    unique_bytes: int  # of which no other repository uses
    day_growth: int | None  # None until a day of history


class Garbage(NamedTuple):
    storage: str
    reclaimable: dict[str, tuple[int, int]]  # mode -> (blobs, bytes)
    lower_bound: bool
    repositories: tuple[Share, ...]


class HotSet(NamedTuple):
    method: str  # log | atime | none
    accuracy: str  # exact | lower_bound | upper_bound | none
    reason: str  # why not a better method ("" for the log)
    windows: dict[str, tuple[int, int]]  # "1h", "24h" -> (bytes, blobs): only the windows measured


class HitRatio(NamedTuple):
    ratio: float
    measure: str  # what it divides, for the check's detail


class StoreFilesystem(NamedTuple):
    used: int  # size - available: everything on it shares the free space
    size: int
    mountpoint: str


class Readings:
    """A view of ``{collector name: reading}``."""

    def __init__(self, by_name: Mapping[str, Any]):
        self._by_name = by_name

    def has(self, collector: str) -> bool:
        return self._by_name.get(collector) is not None

    def _get(self, collector: str) -> Any:
        return self._by_name.get(collector)

    def memory_total(self) -> float | None:
        memory = self._get("memory")
        return memory.total_bytes if memory else None

    def usable_cpus(self) -> tuple[float, str] | None:
        """The CPUs DTR may use and what decided it."""
        cpu = self._get("cpu")
        return (cpu.usable_cpus, cpu.usable_source) if cpu else None

    def cpu_busy(self) -> tuple[float, float] | None:
        """The busy ratio and the seconds it spans; None until two samples."""
        cpu = self._get("cpu")
        if not cpu or cpu.busy_ratio is None:
            return None
        return cpu.busy_ratio, cpu.busy_window_seconds

    def least_free(self) -> Free | None:
        """The filesystem (Docker's or the store's) with the least space available."""
        fs = self._get("filesystem")
        if not fs or not fs.filesystems:
            return None
        smallest = min(fs.filesystems, key=lambda f: f.avail_bytes)
        return Free(smallest.avail_bytes, f"{smallest.role} {smallest.mountpoint}")

    def storage_inodes(self) -> Inodes | None:
        fs = self._get("filesystem")
        store = next((f for f in fs.filesystems if f.role == "storage"), None) if fs else None
        return Inodes(store.files, store.files_free, store.fstype, store.mountpoint) if store else None

    def storage_device_busy(self) -> DeviceBusy | None:
        io = self._get("diskio")
        if not io:
            return None
        return DeviceBusy(io.busy_ratio, tuple(d.name for d in io.devices),
                          io.fstype if io.network_filesystem else None)

    def storage_driver(self) -> str | None:
        """The driver DTR's settings name, else what Docker tells of the registry."""
        for name in ("dtr_api", "docker"):
            driver = getattr(self._get(name), "storage_driver", None)
            if driver:
                return driver
        return None

    def hit_ratio(self) -> HitRatio | None:
        """The file-reads-only ratio where the request log is read, else the rchar one (which counts pushes)."""
        files = getattr(self._get("workload"), "file_hit_ratio", None)
        if files is not None:
            return HitRatio(files, "blob bytes served (request log) vs read from storage")
        ratio = getattr(self._get("pagecache"), "hit_ratio", None)
        return HitRatio(ratio, "registry processes' rchar (counts pushes as hits)") if ratio is not None else None

    def hot_set(self) -> HotSet | None:
        workload = self._get("workload")
        hot = workload.hot if workload else None
        if hot is None:
            return None
        windows = {name: (w.bytes, w.blobs) for name, w in hot.windows.items()}
        return HotSet(hot.method, workload.accuracy, hot.reason, windows)

    def page_cache_available(self) -> float | None:
        return getattr(self._get("workload"), "page_cache_available_bytes", None)

    def process_memory(self) -> float | None:
        """DTR's processes' own (anonymous) memory."""
        return getattr(self._get("workload"), "process_memory_bytes", None)

    def storage_filesystem(self) -> StoreFilesystem | None:
        fs = self._get("filesystem")
        store = next((f for f in fs.filesystems if f.role == "storage"), None) if fs else None
        return StoreFilesystem(store.size_bytes - store.avail_bytes, store.size_bytes, store.mountpoint) if store else None

    def storage_growth(self) -> float | None:
        return getattr(self._get("storage"), "growth_bytes_per_second", None)

    def storage_forecast(self) -> Forecast:
        storage = self._get("storage")
        return Forecast(getattr(storage, "full_forecast_seconds", None), getattr(storage, "detail", ""))

    def garbage(self) -> Garbage | None:
        """What garbage collection would free, and the top repositories by bytes."""
        g = self._get("garbage")
        if not g or g.storage is None:
            return None
        return Garbage(g.storage, {"unreferenced": (g.unreferenced.blobs, g.unreferenced.bytes),
                                   "untagged": (g.untagged.blobs, g.untagged.bytes)}, g.lower_bound,
                       tuple(Share(o.repository, o.bytes, o.unique_bytes, o.day_growth_bytes)
                             for o in g.top_repositories))

    def storage_forecast_after_gc(self) -> Forecast:
        """Time until the store is full if ``--delete-untagged`` garbage collection freed what it can."""
        storage, garbage = self._get("storage"), self.garbage()
        if garbage is None:
            return Forecast(None, "no garbage estimate (the garbage collector is off or has not run)")
        seconds = getattr(storage, "full_forecast_seconds", None)
        if seconds is None:
            return Forecast(None, getattr(storage, "detail", ""))
        if garbage.storage != storage.storage:
            return Forecast(None, f"the garbage estimate is of another store ({garbage.storage})")
        growth, freed = storage.growth_bytes_per_second, garbage.reclaimable["untagged"][1]
        if math.isinf(seconds) or not growth or growth <= 0:
            return Forecast(math.inf, "")
        return Forecast(max(0.0, storage.avail_bytes + freed - storage.critical_free_bytes) / growth, "")
