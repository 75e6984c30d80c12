"""What this node needs for its own workload: pure formulas (docs/workload.md gives the reasoning).

Nothing here reads a file or a clock: every input is an argument, so the
figures can be checked by hand from the metrics that are published beside them.
"""

from __future__ import annotations

import math

GiB = 2**30
KB_MEMORY = 4 * GiB  # KB, RAM: "Generally 4GB is considered sufficient for smaller production installations"
KB_FREE_MARGIN = 30 * 10**9  # KB, DISK (DTR itself): "no less than 20-30GB of space available"
KB_CORES = 2  # KB, CPU: "Most modern dual core processors are likely to be sufficient"
OS_RESERVE = 1 * GiB  # kernel, dockerd, containerd, sshd, agents: memory outside DTR's containers
HEADROOM_RATIO = 0.2  # growth between measurements, LRU imprecision, the kernel's free watermarks
BUSY_TARGET = 0.8  # the cpu_busy check's threshold: recommend enough cores to stay below it
HORIZON_90D = 90 * 86400

# /proc/meminfo lines the page cache cannot take: anonymous memory (without swap), tmpfs and shared
# memory (Shmem is inside Cached but swap-backed), and the kernel's own unreclaimable memory.
UNRECLAIMABLE = ("AnonPages", "Shmem", "SUnreclaim", "KernelStack", "PageTables", "SecPageTables", "Percpu")


def unreclaimable_bytes(meminfo: dict[str, int]) -> int:
    """Memory the page cache cannot have: the UNRECLAIMABLE lines plus reserved huge pages.

    ``Hugetlb`` (4.15+) counts every huge page size; older kernels give HugePages_Total x Hugepagesize.
    """
    huge = meminfo.get("Hugetlb")
    if huge is None:
        huge = meminfo.get("HugePages_Total", 0) * meminfo.get("Hugepagesize", 0)
    return sum(meminfo.get(key, 0) for key in UNRECLAIMABLE) + huge


def page_cache_available_bytes(meminfo: dict[str, int], cgroup_room: int | None = None) -> int:
    """MemTotal minus what cannot be reclaimed, capped by the registry's cgroup room where it has a limit.

    ``cgroup_room`` is the registry cgroup's limit minus its own anonymous memory
    (exporter.cgroups.memory_room), None when no limit binds it.
    """
    host = max(0, meminfo["MemTotal"] - unreclaimable_bytes(meminfo))
    return host if cgroup_room is None else min(host, cgroup_room)


def headroom_bytes(process_bytes: int, hot_24h_bytes: int) -> int:
    return OS_RESERVE + math.ceil(HEADROOM_RATIO * (process_bytes + hot_24h_bytes))


def recommended_memory_bytes(process_bytes: int, hot_24h_bytes: int) -> int:
    """DTR's processes' own memory + the 24 h hot set + headroom, never below the KB's 4 GB."""
    return max(KB_MEMORY, process_bytes + hot_24h_bytes + headroom_bytes(process_bytes, hot_24h_bytes))


def recommended_disk_bytes(used_bytes: int, growth_bytes_per_second: float | None,
                           horizon_seconds: float = HORIZON_90D) -> int:
    """Bytes in use on the store's filesystem + growth over the horizon + the KB's 30 GB free margin.

    Shrinking (negative growth, garbage collection) is not credited: the margin must hold today.
    """
    growth = max(0.0, growth_bytes_per_second or 0.0)
    return used_bytes + round(growth * horizon_seconds) + KB_FREE_MARGIN


def recommended_cpu_cores(busy_cores: float) -> int:
    """Cores that keep the sustained busy figure under the cpu_busy threshold, never below the KB's two.

    ``busy_cores`` is a sustained figure (busy ratio x usable cores over the cpu_busy window).
    """
    needed = math.ceil(busy_cores / BUSY_TARGET - 1e-9)  # 1.6 busy cores need exactly 2, not 3
    return max(KB_CORES, needed)


def file_hit_ratio(served_bytes: int, read_bytes: int) -> float | None:
    """Share of blob bytes served from the page cache: 1 - storage reads / blob bytes served.

    Unlike 1 - read_bytes/rchar it ignores socket reads, which a push adds to rchar
    (a 256 MiB push: +256 MiB rchar, +0.1 MiB read_bytes) and which would read as cache hits.
    ``served_bytes`` comes from the request log (LogHotSet.served_bytes), ``read_bytes`` from
    the registry's /proc/<pid>/io over the same interval. None when nothing was served.
    """
    if served_bytes <= 0:
        return None
    return min(1.0, max(0.0, 1 - read_bytes / served_bytes))
