"""Host memory: size, what is available, the file-backed page cache and its pressure.

Emits dtr_memory_total_bytes, dtr_memory_available_bytes, dtr_memory_page_cache_bytes,
dtr_memory_dirty_bytes, dtr_memory_major_faults_total, dtr_page_cache_refaults_total,
dtr_memory_pressure_seconds_total{level}.
Only MemTotal is required; vmstat and PSI are optional sources, and a figure whose
lines are missing is absent rather than guessed (MemAvailable excepted: see below).
"""

from __future__ import annotations

from .. import procfs
from ..readings import MemoryReading


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

    def collect(self) -> MemoryReading:
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
