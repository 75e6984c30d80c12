"""Readings: what collectors produce. Plain frozen dataclasses, no Prometheus types."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryReading:
    total_bytes: int
    available_bytes: int | None  # MemAvailable, estimated before Linux 3.14
    page_cache_bytes: int | None  # Active(file) + Inactive(file)
    dirty_bytes: int | None
    major_faults: int | None  # None: /proc/vmstat unreadable or without the counter
    refaults_file: int | None  # vmstat workingset_refault_file (5.9+), workingset_refault before
    pressure: dict[str, float] = field(default_factory=dict)  # some/full -> stall seconds


@dataclass(frozen=True)
class CpuReading:
    host_cpus: int
    usable_cpus: float  # the CPUs DTR's processes may use (their cgroups' quotas and cpusets)
    seconds_by_mode: dict[str, float]
    busy_ratio: float | None  # share of usable CPU time busy over the window
    busy_window_seconds: float
    pressure: dict[str, float] = field(default_factory=dict)
    usable_source: str = ""  # what decided usable_cpus: "cgroup of pid 812 (registry)", "online CPUs, ..."


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


@dataclass(frozen=True)
class StorageReading:
    """The image store's accounting. ``storage`` None: no storage path known yet (``detail`` says why)."""

    storage: str | None = None
    path: str = ""
    detail: str = ""
    blobs: int = 0
    blob_bytes: int = 0
    repositories: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    upload_oldest_age_seconds: float | None = None
    abandoned_uploads: int = 0
    abandoned_upload_bytes: int = 0
    data_bytes: int = 0  # blobs + uploads
    scan_errors: int = 0  # directories or files that could not be read
    scan_full: bool = True  # False: an incremental rescan
    scan_prefixes_changed: int = 0
    scan_files: int = 0
    scan_duration_seconds: float = 0.0
    scan_timestamp_seconds: float = 0.0
    avail_bytes: int = 0
    growth_bytes_per_second: float | None = None
    full_forecast_seconds: float | None = None  # None unknown, math.inf not growing
    history_samples: int = 0
    devices: tuple[str, ...] = ()  # block devices under the store, as the diskio collector names them


@dataclass(frozen=True)
class PagecacheReading:
    storage: str | None = None
    detail: str = ""
    method: str | None = None  # cachestat | mincore | None (neither usable)
    resident_bytes: float | None = None  # blob bytes in the page cache (estimated when sampled)
    resident_error_bytes: float | None = None  # standard error of that estimate, 0 when measured in full
    sampled_ratio: float = 0.0  # share of prefix directories measured
    hit_ratio: float | None = None  # share of the registry's reads served from cache over the window
    hit_window_seconds: float = 0.0
    processes: int = 0  # registry processes found


@dataclass(frozen=True)
class TrafficReading:
    source: str  # registry_metrics | netns | none
    served_bytes: float | None = None
    received_bytes: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class ContainerStats:
    name: str
    component: str
    running: bool
    memory_bytes: int | None = None  # usage minus inactive file cache, as `docker stats` shows it
    cpu_seconds: float | None = None
    network_receive_bytes: int | None = None  # None: host network, no counters of its own
    network_transmit_bytes: int | None = None


@dataclass(frozen=True)
class DockerReading:
    """The DTR replica (or plain registry) found through Docker. ``available`` False: no Docker here."""

    available: bool
    replica_id: str | None = None
    version: str | None = None
    storage_driver: str | None = None  # known from the volume or the registry's environment, else None
    storage_source: str | None = None  # the image store as the host names it
    storage_volume: str | None = None
    containers: tuple[ContainerStats, ...] = ()


@dataclass(frozen=True)
class DtrApiReading:
    """What the DTR API said. ``up`` False: some call got no well-formed answer (``error`` says which)."""

    up: bool
    error: str = ""
    healthy: bool | None = None  # /_ping's verdict on the replica answering
    replica_health: dict[str, bool] = field(default_factory=dict)  # replica id -> health "OK"
    critical_issues: int | None = None
    issues: int | None = None
    storage_driver: str | None = None
