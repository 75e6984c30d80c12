"""Host memory: size, what is available, the file-backed page cache and its pressure.

Emits dtr_memory_total_bytes, dtr_memory_available_bytes, dtr_memory_page_cache_bytes,
dtr_memory_dirty_bytes, dtr_memory_major_faults_total, dtr_page_cache_refaults_total,
dtr_memory_pressure_seconds_total{level}.
Only MemTotal is required; vmstat and PSI are optional sources, and a figure whose
lines are missing is absent rather than guessed (MemAvailable excepted: see below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client.core import Metric

from .. import procfs
from ..families import counter, gauge, pressure
from . import NOTHING, Found, Spec

SPEC = Spec(True, 15, 10, "/proc/meminfo, /proc/vmstat, /proc/pressure/memory, /proc/sys/vm/min_free_kbytes")


@dataclass(frozen=True)
class MemoryReading:
    total_bytes: int
    available_bytes: int | None  # MemAvailable, estimated before Linux 3.14
    page_cache_bytes: int | None  # Active(file) + Inactive(file)
    dirty_bytes: int | None
    major_faults: int | None  # None: /proc/vmstat unreadable or without the counter
    refaults_file: int | None  # vmstat workingset_refault_file (5.9+), workingset_refault before
    pressure: dict[str, float] = field(default_factory=dict)  # some/full -> stall seconds


def estimate_available(info: dict[str, int], low_watermark: int) -> int | None:
    """MemAvailable as Linux 3.14+ computes it, for kernels that do not write it.

    The formula procps uses on such kernels: MemFree minus the low watermark, plus the file
    page cache and reclaimable slab less what reclaiming them must leave (half of each, at
    most the watermark). ``low_watermark`` is min_free_kbytes * 5/4, in bytes (0 if unknown).
    None when a term is missing: better no figure than a wrong one.
    """
    try:
        free, slab = info["MemFree"], info["SReclaimable"]
        cache = info["Active(file)"] + info["Inactive(file)"]
    except KeyError:
        return None
    available = (free - low_watermark + cache - min(cache // 2, low_watermark)
                 + slab - min(slab // 2, low_watermark))
    return max(0, available)


def _sum(info: dict[str, int], *keys: str) -> int | None:
    return sum(info[k] for k in keys) if all(k in info for k in keys) else None


class MemoryCollector:
    name = "memory"

    def __init__(self, ctx):
        self.procfs = ctx.procfs

    def _low_watermark(self) -> int:
        text = procfs.read_optional(self.procfs, "sys", "vm", "min_free_kbytes")
        try:
            return int(text) * 1024 * 5 // 4 if text else 0
        except ValueError:
            procfs.PARSE_ERRORS.note("sys/vm/min_free_kbytes", text, "not a number")
            return 0

    def collect(self, found: Found = NOTHING) -> MemoryReading:
        info = procfs.parse_meminfo(procfs.read(self.procfs, "meminfo"))
        if "MemTotal" not in info:
            raise ValueError("meminfo lacks 'MemTotal'")
        vmstat_text = procfs.read_optional(self.procfs, "vmstat")
        vmstat = procfs.parse_keyvalue(vmstat_text, "vmstat") if vmstat_text is not None else {}
        available = info.get("MemAvailable")
        if available is None:  # before Linux 3.14
            available = estimate_available(info, self._low_watermark())
        return MemoryReading(
            total_bytes=info["MemTotal"],
            available_bytes=available,
            page_cache_bytes=_sum(info, "Active(file)", "Inactive(file)"),
            dirty_bytes=info.get("Dirty"),
            major_faults=vmstat.get("pgmajfault"),
            # before 5.9 the kernel counted only file refaults, under the plain name
            refaults_file=vmstat.get("workingset_refault_file", vmstat.get("workingset_refault")),
            pressure=procfs.read_pressure(self.procfs, "memory"),
        )


COLLECTOR = MemoryCollector


def families(m: MemoryReading) -> Iterator[Metric]:
    yield gauge("dtr_memory_total_bytes", "Usable RAM (MemTotal).", m.total_bytes)
    optional = (
        (gauge, "dtr_memory_available_bytes", "Memory available for new work without swapping "
         "(MemAvailable; estimated from MemFree, file cache and reclaimable slab before Linux 3.14).",
         m.available_bytes),
        (gauge, "dtr_memory_page_cache_bytes", "File-backed page cache: Active(file) + Inactive(file).",
         m.page_cache_bytes),
        (gauge, "dtr_memory_dirty_bytes", "Page cache waiting to be written back (Dirty).", m.dirty_bytes),
        (counter, "dtr_memory_major_faults", "Page faults that needed disk I/O (vmstat pgmajfault).", m.major_faults),
        (counter, "dtr_page_cache_refaults", "File pages read again soon after eviction (vmstat "
         "workingset_refault_file, workingset_refault before Linux 5.9): the page cache is too small.",
         m.refaults_file),
    )
    for family, name, doc, value in optional:
        if value is not None:  # the kernel did not say: absent, never a guess
            yield family(name, doc, value)
    if m.pressure:
        yield pressure("dtr_memory_pressure_seconds", "Time tasks stalled waiting for memory (PSI).", m.pressure)
