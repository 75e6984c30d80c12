"""The sizing checks: KB-derived defaults and a pure evaluation of readings.

``evaluate(readings, thresholds)`` reads nothing but its arguments. Each
check observes one number from the readings and compares it, per severity,
with the threshold in force. A check whose input is missing is ``unknown``;
one that does not apply to this node (an external storage driver, a network
filesystem) is ``not_applicable``. Neither counts as passing or failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import units

OK, FAIL, UNKNOWN, NOT_APPLICABLE = "ok", "fail", "unknown", "not_applicable"
STATES = (OK, FAIL, UNKNOWN, NOT_APPLICABLE)
SEVERITIES = ("warning", "critical")
LOCAL_STORAGE_DRIVERS = ("filesystem", "inmemory")

KB = "Docker KB 'What are the minimum requirements for Docker Trusted Registry (DTR)?'"


@dataclass(frozen=True)
class Check:
    name: str
    unit: str  # bytes | cores | ratio | seconds
    minimum: bool  # True: observed must be >= threshold; False: <= threshold
    defaults: Mapping[str, float]
    requirement: str  # how a person reads the threshold, {} is the value
    source: str  # the KB sentence (or reason) the default comes from

    def parse(self, value: object) -> float:
        parser = {"bytes": units.parse_size, "ratio": units.parse_ratio,
                  "seconds": units.parse_duration}.get(self.unit, _parse_count)
        return float(parser(value))

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.unit == "bytes":
            return units.format_bytes(value)
        if self.unit == "seconds":
            return units.format_duration(value)
        if self.unit == "ratio":
            return f"{value * 100:.1f}%"
        return f"{value:g}"


def _parse_count(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a count: write a number such as 2")
    return float(value)


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("memory_total", "bytes", True, {"critical": 4 * 2**30}, "RAM at least {}",
          "RAM: Generally 4GB is considered sufficient for smaller production installations."),
    Check("disk_free", "bytes", True, {"warning": 30 * 10**9, "critical": 20 * 10**9},
          "at least {} available for Docker and the image store",
          "DISK (DTR itself): Generally it's preferable to have no less than 20-30GB of space available."),
    Check("cpu_cores", "cores", True, {"warning": 2}, "at least {} usable CPUs",
          "CPU: DTR is not very CPU intensive. Most modern dual core processors are likely to be sufficient."),
    Check("cpu_busy", "ratio", False, {"warning": 0.8}, "CPU busy below {}",
          "CPU: DTR is not very CPU intensive, so sustained high CPU use is a signal."),
    Check("page_cache_hit_ratio", "ratio", True, {"warning": 0.9}, "registry reads from page cache at least {}",
          "DISK (image storage): With the local filesystem driver, a significant amount of RAM is "
          "recommended in order to maximize the benefits of Linux' native storage caching."),
    Check("storage_forecast", "seconds", True, {"warning": 30 * 86400, "critical": 7 * 86400},
          "image store full in more than {}",
          "DISK (image storage): requirements scale linearly with the size and number of images."),
    Check("storage_io", "ratio", False, {"warning": 0.9}, "storage device busy below {}",
          "DTR is made up of small binaries that don't do a whole lot other than serve up large files."),
    Check("inodes_free", "ratio", True, {"warning": 0.10, "critical": 0.05},
          "at least {} inodes free on the image store",
          "Storage layout: every blob takes one directory and one file, so inodes run out before bytes can."),
)}
MEMORY_TOLERANCE = 0.10  # a VM sold as 4 GiB reports 3.7-3.9 GiB of MemTotal


@dataclass(frozen=True)
class Verdict:
    check: str
    severity: str
    state: str
    observed: float | None
    threshold: float
    detail: str = ""

    @property
    def spec(self) -> Check:
        return CHECKS[self.check]


@dataclass(frozen=True)
class Observation:
    value: float | None = None
    detail: str = ""
    applicable: bool = True


def _storage_driver(readings: Mapping[str, Any]) -> str | None:
    for name in ("dtr_api", "docker"):
        driver = getattr(readings.get(name), "storage_driver", None)
        if driver:
            return driver
    return None


def _external_storage(readings: Mapping[str, Any]) -> str | None:
    driver = _storage_driver(readings)
    return driver if driver and driver not in LOCAL_STORAGE_DRIVERS else None


def _memory_total(r: Mapping[str, Any]) -> Observation:
    memory = r.get("memory")
    return Observation(memory.total_bytes) if memory else Observation()


def _disk_free(r: Mapping[str, Any]) -> Observation:
    fs = r.get("filesystem")
    if not fs or not fs.filesystems:
        return Observation(detail="no filesystem reading")
    smallest = min(fs.filesystems, key=lambda f: f.avail_bytes)
    return Observation(smallest.avail_bytes, f"{smallest.role} {smallest.mountpoint}")


def _cpu_cores(r: Mapping[str, Any]) -> Observation:
    cpu = r.get("cpu")
    return Observation(cpu.usable_cpus, cpu.usable_source) if cpu else Observation()


def _cpu_busy(r: Mapping[str, Any]) -> Observation:
    cpu = r.get("cpu")
    if not cpu or cpu.busy_ratio is None:
        return Observation(detail="needs two CPU samples")
    return Observation(cpu.busy_ratio, f"over the last {units.format_duration(cpu.busy_window_seconds)}")


def _storage_io(r: Mapping[str, Any]) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    io = r.get("diskio")
    if not io:
        return Observation()
    if io.network_filesystem:
        return Observation(detail=f"storage on {io.fstype}, a network filesystem", applicable=False)
    if io.busy_ratio is None:
        return Observation(detail="needs two disk samples" if io.devices else "no block device found")
    return Observation(io.busy_ratio, ",".join(d.name for d in io.devices))


def _inodes_free(r: Mapping[str, Any]) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    fs = r.get("filesystem")
    store = next((f for f in fs.filesystems if f.role == "storage"), None) if fs else None
    if store is None:
        return Observation(detail="no storage filesystem")
    if not store.files:
        return Observation(detail=f"{store.fstype} reports no inode limit", applicable=False)
    return Observation(store.files_free / store.files, store.mountpoint)


def _page_cache_hit_ratio(r: Mapping[str, Any]) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    cache = r.get("pagecache")
    ratio = getattr(cache, "hit_ratio", None)
    if ratio is None:
        return Observation(detail="no registry reads in the window" if cache else "")
    return Observation(ratio, "registry processes")


def _storage_forecast(r: Mapping[str, Any]) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external} has no local capacity", applicable=False)
    storage = r.get("storage")
    forecast = getattr(storage, "full_forecast_seconds", None)
    if forecast is None:
        return Observation(detail=getattr(storage, "detail", "") or "needs more history")
    return Observation(forecast, "at the measured growth")


OBSERVERS: dict[str, Callable[[Mapping[str, Any]], Observation]] = {
    "memory_total": _memory_total,
    "disk_free": _disk_free,
    "cpu_cores": _cpu_cores,
    "cpu_busy": _cpu_busy,
    "page_cache_hit_ratio": _page_cache_hit_ratio,
    "storage_forecast": _storage_forecast,
    "storage_io": _storage_io,
    "inodes_free": _inodes_free,
}


def evaluate(readings: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[Verdict]:
    """Every check and severity in ``thresholds``, judged on ``readings``."""
    verdicts = []
    for name, by_severity in thresholds.items():
        spec = CHECKS[name]
        seen = OBSERVERS[name](readings)
        for severity, threshold in by_severity.items():
            if not seen.applicable:
                state = NOT_APPLICABLE
            elif seen.value is None:
                state = UNKNOWN
            elif spec.minimum:
                state = OK if seen.value >= threshold else FAIL
            else:
                state = OK if seen.value <= threshold else FAIL
            verdicts.append(Verdict(name, severity, state, seen.value, threshold, seen.detail))
    return verdicts

