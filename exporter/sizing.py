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
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from . import recommend, units
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
    # non-empty: the configured value is a share (ratio) of this reading, per severity (SCALES),
    # and the threshold in force is that share of it, in ``unit``
    scaled: str = ""

    def parse(self, value: object) -> float:
        if self.scaled:
            return float(units.parse_ratio(value))
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
    Check("storage_forecast_after_gc", "seconds", True, {"warning": 30 * 86400, "critical": 7 * 86400},
          "image store full in more than {} once garbage is collected",
          "As storage_forecast, with the space garbage collection (--delete-untagged) would free given back: "
          "a store that passes this but fails storage_forecast needs a garbage collection, not a bigger disk."),
    Check("storage_io", "ratio", False, {"warning": 0.9}, "storage device busy below {}",
          "DTR is made up of small binaries that don't do a whole lot other than serve up large files."),
    Check("inodes_free", "ratio", True, {"warning": 0.10, "critical": 0.05},
          "at least {} inodes free on the image store",
          "Storage layout: every blob takes one directory and one file, so inodes run out before bytes can."),
    Check("memory_hot_set", "bytes", True, {"warning": 1.0, "critical": 1.0},
          "page cache the registry can have at least {} (its hot set)",
          "DISK (image storage): a significant amount of RAM for Linux' native storage caching, made a number: "
          "the blobs read in the last 24 h (warning) and 1 h (critical).",
          scaled="the hot set: warning of the 24 h window, critical of the 1 h window"),
)}
# memory_hot_set: the hot-set window each severity's threshold is a share of
HOT_SET_WINDOWS = {"warning": "24h", "critical": "1h"}
MEMORY_TOLERANCE = 0.10  # a VM sold as 4 GiB reports 3.7-3.9 GiB of MemTotal


@dataclass(frozen=True)
class Verdict:
    check: str
    severity: str
    state: str
    observed: float | None
    threshold: float | None  # None: a scaled check whose reading is not measured
    detail: str = ""
    share: float | None = None  # a scaled check: the configured share of its reading

    @property
    def spec(self) -> Check:
        return CHECKS[self.check]

    def threshold_text(self) -> str:
        """The threshold as a person reads it; a scaled one not measured yet says what it will be."""
        if self.threshold is None and self.share is not None:
            return f"{self.share * 100:g}% of the {HOT_SET_WINDOWS.get(self.severity, '')} hot set (not measured)"
        return self.spec.show(self.threshold)


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
    hit = r.hit_ratio()
    if hit is None:
        return Observation(detail="no registry reads in the window" if r.has("pagecache") else "")
    return Observation(hit.ratio, hit.measure)


def _memory_hot_set(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external}", applicable=False)
    available, hot = r.page_cache_available(), r.hot_set()
    if available is None or hot is None:  # the workload collector off or failing, or no store found
        return Observation(available, "no workload reading" if available is None else "no store to find a hot set in")
    sets = ", ".join(f"{w} hot set {units.format_bytes(b)} in {n} blobs" for w, (b, n) in sorted(hot.windows.items()))
    return Observation(available, f"{sets or 'no hot set'} ({hot.method}, {hot.accuracy}"
                       f"{'; ' + hot.reason if hot.reason else ''})")


def _storage_forecast(r: Readings) -> Observation:
    external = _external_storage(r)
    if external:
        return Observation(detail=f"storage driver {external} has no local capacity", applicable=False)
    forecast = r.storage_forecast()
    if forecast.seconds is None:
        return Observation(detail=forecast.detail or "needs more history")
    return Observation(forecast.seconds, "at the measured growth")


def _storage_forecast_after_gc(r: Readings) -> Observation:
    plain = _storage_forecast(r)
    if not plain.applicable or plain.value is None:
        return plain
    after = r.storage_forecast_after_gc()
    if after.seconds is None:
        return Observation(detail=after.detail)
    freed = r.garbage().reclaimable["untagged"][1]
    return Observation(after.seconds, f"at the measured growth, with {units.format_bytes(freed)} of garbage freed")


OBSERVERS: dict[str, Callable[[Readings], Observation]] = {
    "memory_total": _memory_total,
    "disk_free": _disk_free,
    "cpu_cores": _cpu_cores,
    "cpu_busy": _cpu_busy,
    "page_cache_hit_ratio": _page_cache_hit_ratio,
    "storage_forecast": _storage_forecast,
    "storage_forecast_after_gc": _storage_forecast_after_gc,
    "storage_io": _storage_io,
    "inodes_free": _inodes_free,
    "memory_hot_set": _memory_hot_set,
}


def _hot_set_bytes(r: Readings, severity: str) -> float | None:
    hot = r.hot_set()
    window = hot.windows.get(HOT_SET_WINDOWS[severity]) if hot else None
    return float(window[0]) if window else None


# Scaled checks: (readings, severity) -> the reading the configured share applies to; None unknown
SCALES: dict[str, Callable[[Readings, str], float | None]] = {"memory_hot_set": _hot_set_bytes}


def evaluate(readings: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[Verdict]:
    """Every check and severity in ``thresholds``, judged on ``readings`` ({collector name: reading})."""
    view = Readings(readings)
    verdicts = []
    for name, by_severity in thresholds.items():
        spec = CHECKS[name]
        seen = OBSERVERS[name](view)
        for severity, threshold in by_severity.items():
            share = None
            if name in SCALES:
                base, share = SCALES[name](view, severity), threshold
                threshold = None if base is None else threshold * base
            if not seen.applicable:
                state = NOT_APPLICABLE
            elif seen.value is None or threshold is None:
                state = UNKNOWN
            elif spec.minimum:
                state = OK if seen.value >= threshold else FAIL
            else:
                state = OK if seen.value <= threshold else FAIL
            verdicts.append(Verdict(name, severity, state, seen.value, threshold, seen.detail, share))
    return verdicts



# --- what this node needs for its own workload (exporter.recommend's formulas) ----------------------

DISK_HORIZON = "90d"


@dataclass(frozen=True)
class Need:
    """A recommended size of one resource, beside the KB's minimum and what the node has."""

    resource: str  # memory | disk | cpu
    unit: str  # bytes | cores
    value: float | None  # None: an input is not measured (``reasoning`` says which)
    installed: float | None
    kb_minimum: float
    reasoning: str  # the formula with its inputs, one line

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        return units.format_bytes(value) if self.unit == "bytes" else f"{value:g}"


def _memory_need(r: Readings) -> Need:
    own, hot = r.process_memory(), r.hot_set()
    h24 = hot.windows.get("24h") if hot else None
    need = Need("memory", "bytes", None, r.memory_total(), recommend.KB_MEMORY, "")
    if own is None or h24 is None:
        missing = [*(["DTR's process memory"] if own is None else []),
                   *([f"the 24 h hot set ({hot.method if hot else 'no reading'})"] if h24 is None else [])]
        return replace(need, reasoning=f"unknown: {' and '.join(missing)} not measured")
    fmt = units.format_bytes
    return replace(need, value=recommend.recommended_memory_bytes(own, h24[0]), reasoning=(
        f"DTR's processes {fmt(own)} + 24 h hot set {fmt(h24[0])} ({hot.method}, {hot.accuracy}) + headroom "
        f"{fmt(recommend.headroom_bytes(own, h24[0]))} (1 GiB + 20 %), at least the KB's {fmt(recommend.KB_MEMORY)}"))


def _disk_need(r: Readings) -> Need:
    fs = r.storage_filesystem()
    need = Need("disk", "bytes", None, fs.size if fs else None, recommend.KB_FREE_MARGIN, "")
    if fs is None:
        return replace(need, reasoning="unknown: no storage filesystem")
    growth = r.storage_growth()
    horizon = units.parse_duration(DISK_HORIZON)
    fmt = units.format_bytes
    rate = f"growth {fmt(max(0.0, growth) * 86400)}/day" if growth is not None else "growth not measured yet (0)"
    return replace(need, value=recommend.recommended_disk_bytes(fs.used, growth, horizon), reasoning=(
        f"{fmt(fs.used)} in use on {fs.mountpoint} + {rate} over {DISK_HORIZON} + the KB's "
        f"{fmt(recommend.KB_FREE_MARGIN)} free margin"))


def _cpu_need(r: Readings) -> Need:
    usable, busy = r.usable_cpus(), r.cpu_busy()
    need = Need("cpu", "cores", None, usable[0] if usable else None, recommend.KB_CORES, "")
    if usable is None or busy is None:
        return replace(need, reasoning="unknown: needs two CPU samples")
    cores = busy[0] * usable[0]
    return replace(need, value=recommend.recommended_cpu_cores(cores), reasoning=(
        f"busy {cores:.2f} of {usable[0]:g} usable cores over {units.format_duration(busy[1])} / "
        f"{recommend.BUSY_TARGET} (the cpu_busy threshold), at least the KB's {recommend.KB_CORES}"))


def needs(readings: Mapping[str, Any]) -> list[Need]:
    """Recommended memory, disk and CPU for this node's own workload, from ``readings``."""
    view = Readings(readings)
    return [_memory_need(view), _disk_need(view), _cpu_need(view)]
