"""The sizing checks: KB-derived defaults and a pure evaluation of readings.

``evaluate(readings, thresholds)`` reads nothing but its arguments, and the
readings only through the typed accessors of exporter.readings. Each
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
from .readings import Readings

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


def _external_storage(r: Readings) -> str | None:
    driver = r.storage_driver()
    return driver if driver and driver not in LOCAL_STORAGE_DRIVERS else None


def _memory_total(r: Readings) -> Observation:
    return Observation(r.memory_total())


def _disk_free(r: Readings) -> Observation:
    free = r.least_free()
    return Observation(free.bytes, free.where) if free else Observation(detail="no filesystem reading")


def _cpu_cores(r: Readings) -> Observation:
    usable = r.usable_cpus()
    return Observation(*usable) if usable else Observation()


def _cpu_busy(r: Readings) -> Observation:
    busy = r.cpu_busy()
    if busy is None:
        return Observation(detail="needs two CPU samples")
    return Observation(busy[0], f"over the last {units.format_duration(busy[1])}")


def _storage_io(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    io = r.storage_device_busy()
    if not io:
        return Observation()
    if io.network_fstype:
        return Observation(detail=f"storage on {io.network_fstype}, a network filesystem", applicable=False)
    if io.ratio is None:
        return Observation(detail="needs two disk samples" if io.devices else "no block device found")
    return Observation(io.ratio, ",".join(io.devices))


def _inodes_free(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    inodes = r.storage_inodes()
    if inodes is None:
        return Observation(detail="no storage filesystem")
    if not inodes.files:
        return Observation(detail=f"{inodes.fstype} reports no inode limit", applicable=False)
    return Observation(inodes.free / inodes.files, inodes.mountpoint)


def _page_cache_hit_ratio(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    ratio = r.page_cache_hit_ratio()
    if ratio is None:
        return Observation(detail="no registry reads in the window" if r.has("pagecache") else "")
    return Observation(ratio, "registry processes")


def _storage_forecast(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external} has no local capacity", applicable=False)
    forecast = r.storage_forecast()
    if forecast.seconds is None:
        return Observation(detail=forecast.detail or "needs more history")
    return Observation(forecast.seconds, "at the measured growth")


OBSERVERS: dict[str, Callable[[Readings], Observation]] = {
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
    """Every check and severity in ``thresholds``, judged on ``readings`` ({collector name: reading})."""
    view = Readings(readings)
    verdicts = []
    for name, by_severity in thresholds.items():
        spec = CHECKS[name]
        seen = OBSERVERS[name](view)
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

