"""Collectors: each reads one source into a plain reading.

A collector module defines one class with ``name`` and ``collect()``; its
constructor takes the ``Context``. Modules are imported only when enabled,
so a host without Docker never loads the Docker SDK.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# name: (enabled by default, interval seconds, timeout seconds, what it reads)
DEFAULTS: dict[str, tuple[bool, float, float, str]] = {
    "memory": (True, 15, 10, "/proc/meminfo, /proc/vmstat, /proc/pressure/memory, /proc/sys/vm/min_free_kbytes"),
    "cpu": (True, 15, 10, "/proc/stat, /proc/pressure/cpu, the DTR processes' cgroups (cpu.max, cfs quota, cpuset)"),
    "filesystem": (True, 30, 10, "/proc/self/mountinfo and statvfs of Docker's data root and the storage path"),
    "diskio": (True, 15, 10, "/proc/diskstats, /sys/block/*/slaves, /proc/pressure/io for the storage device"),
    "storage": (True, 300, 3600, "the registry's storage tree under --storage.path (background walk)"),
    "pagecache": (True, 60, 30, "cachestat() over blob files, /proc/<pid>/io of the registry processes"),
    "traffic": (True, 30, 10, "the registry's own metrics (--registry.metrics-url) or its container's network counters"),
    "docker": (True, 30, 20, "the Docker Engine API at --docker.host (DTR containers, volumes, stats)"),
    "dtr_api": (False, 60, 20, "the DTR API at --dtr.url (/_ping, cluster status, storage settings)"),
}
# Run first, at start and in `check`, the others after them: they tell the others where the store
# is, what drives it and which processes are DTR's (in this order: DTR's settings name the driver
# that dtr_info shows).
DISCOVERERS = ("dtr_api", "docker")
# Read ctx.storage_path or what Discovery.store() holds: run again at once when the store changes,
# not an interval later.
STORE_FACING = frozenset({"filesystem", "diskio", "storage", "pagecache"})


class PartialReading(Exception):
    """Raised with what could still be read when part of a source failed.

    The sampler keeps ``reading`` and marks the collector failed, so the
    success metric tells of the fault while the rest of the data stands.
    """

    def __init__(self, reading: Any, error: str):
        super().__init__(error)
        self.reading = reading


class Discovery:
    """What one collector learns that others follow: the storage path and driver.

    Set by the docker / dtr_api collectors, read by the storage-facing ones
    (``dtr.scan_shared_store`` decides from ``replica_id`` and ``replicas``).
    Plain attribute writes and reads are atomic in CPython. The sampler
    compares ``store()`` after every discoverer run and wakes the
    STORE_FACING collectors when it changed.
    """

    def __init__(self, storage_path: Path | None = None, storage_driver: str | None = None):
        self.storage_path = storage_path
        self.storage_driver = storage_driver
        self.replica_id: str | None = None  # this node's DTR replica (docker collector)
        self.replicas: tuple[str, ...] = ()  # every replica the DTR API knows (dtr_api collector)
        # the running DTR containers' pids and HostConfig CPU limits (docker collector; cpu reads them)
        self.dtr_processes: tuple = ()  # of exporter.dtr.Process

    def store(self) -> tuple:
        """What the store-facing collectors follow: where the store is and who walks a shared one."""
        return self.storage_path, self.replica_id, self.replicas


@dataclass
class Context:
    """Everything a collector may read: host paths, endpoints and settings."""

    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    rootfs: Path = Path("/")
    docker_data_root: Path = Path("/var/lib/docker")
    config: Any = None  # exporter.config.Config; collectors read their settings from it
    discovery: Discovery = field(default_factory=Discovery)

    def host_path(self, path: str | Path) -> Path:
        """A host path as seen from here: ``/var/lib/docker`` under ``--path.rootfs``."""
        path = Path(path)
        if path.is_absolute():
            return self.rootfs / path.relative_to("/")
        return path

    @property
    def storage_path(self) -> Path | None:
        return self.discovery.storage_path


def create(name: str, ctx: Context):
    """An instance of collector ``name``, importing its module on first use."""
    module = importlib.import_module(f"{__name__}.{name}")
    return module.COLLECTOR(ctx)
