"""Host memory: size, what is available, the file-backed page cache and its pressure.

Emits dtr_memory_total_bytes, dtr_memory_available_bytes, dtr_memory_page_cache_bytes,
dtr_memory_dirty_bytes, dtr_memory_major_faults_total, dtr_page_cache_refaults_total,
dtr_memory_pressure_seconds_total{level}.
"""

from __future__ import annotations

from .. import procfs
from ..readings import MemoryReading


class MemoryCollector:
    name = "memory"

    def __init__(self, ctx):
        self.procfs = ctx.procfs

    def collect(self) -> MemoryReading:
        info = procfs.parse_meminfo(procfs.read(self.procfs, "meminfo"))
        vmstat = procfs.parse_keyvalue(procfs.read(self.procfs, "vmstat"))
        try:
            pressure = procfs.parse_pressure(procfs.read(self.procfs, "pressure", "memory"))
        except FileNotFoundError:  # kernel without CONFIG_PSI, or psi=0
            pressure = {}
        try:
            return MemoryReading(
                total_bytes=info["MemTotal"],
                available_bytes=info["MemAvailable"],
                page_cache_bytes=info["Active(file)"] + info["Inactive(file)"],
                dirty_bytes=info["Dirty"],
                major_faults=vmstat["pgmajfault"],
                refaults_file=vmstat.get("workingset_refault_file"),
                pressure=pressure,
            )
        except KeyError as missing:
            raise ValueError(f"meminfo/vmstat lacks {missing}") from None


COLLECTOR = MemoryCollector
