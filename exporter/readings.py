"""Readings: what collectors produce. Plain frozen dataclasses, no Prometheus types."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryReading:
    total_bytes: int
    available_bytes: int
    page_cache_bytes: int  # Active(file) + Inactive(file)
    dirty_bytes: int
    major_faults: int
    refaults_file: int | None  # vmstat workingset_refault_file (Linux 5.9+)
    pressure: dict[str, float] = field(default_factory=dict)  # some/full -> stall seconds


@dataclass(frozen=True)
class CpuReading:
    host_cpus: int
    usable_cpus: float  # after cgroup quota and cpuset
    seconds_by_mode: dict[str, float]
    busy_ratio: float | None  # share of usable CPU time busy over the window
    busy_window_seconds: float
    pressure: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Filesystem:
    role: str  # storage | docker
    mountpoint: str
    device: str
    fstype: str
    size_bytes: int
    avail_bytes: int
    files: int
    files_free: int
    network: bool  # NFS, CIFS, ...


@dataclass(frozen=True)
class FilesystemReading:
    filesystems: tuple[Filesystem, ...]


@dataclass(frozen=True)
class Device:
    name: str
    read_bytes: int
    written_bytes: int
    io_seconds: float


@dataclass(frozen=True)
class DiskioReading:
    devices: tuple[Device, ...]  # the disks under the storage path
    fstype: str
    network_filesystem: bool
    busy_ratio: float | None  # busiest device's io time share over the window
    busy_window_seconds: float
    pressure: dict[str, float] = field(default_factory=dict)
