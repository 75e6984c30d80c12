"""Typed questions about a snapshot's readings, for sizing: the one place outside
exporter/collectors/ that knows the fields of a collector's reading.

Each accessor answers None when the collector has no reading (disabled, not run yet,
failed). A test (tests/unit/test_boundaries.py) keeps other modules from reaching
into readings by attribute name.
"""

from __future__ import annotations

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

    def page_cache_hit_ratio(self) -> float | None:
        return getattr(self._get("pagecache"), "hit_ratio", None)

    def storage_forecast(self) -> Forecast:
        storage = self._get("storage")
        return Forecast(getattr(storage, "full_forecast_seconds", None), getattr(storage, "detail", ""))
