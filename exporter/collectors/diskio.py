"""The block devices under the image store: bytes moved and time busy.

Emits dtr_storage_device_read_bytes_total, dtr_storage_device_written_bytes_total,
dtr_storage_device_io_time_seconds_total, each {device}; dtr_storage_device_busy_ratio;
dtr_storage_network_filesystem; dtr_io_pressure_seconds_total{level}.
A partition counts as its disk; a device-mapper (LVM, dm-crypt) or md device as the
disks beneath it. A store on NFS has no local device and is reported as such.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import mounts, procfs
from ..readings import Device, DiskioReading
from ..window import Window

BUSY_WINDOW = 300.0


class DiskioCollector:
    name = "diskio"

    def __init__(self, ctx):
        self.ctx = ctx
        self.window = Window(BUSY_WINDOW)
        self._devices: tuple[str, ...] = ()

    def disks_under(self, major: int, minor: int, source: str) -> list[str]:
        """Whole-disk names holding device major:minor (or the mount source)."""
        block = self.ctx.sysfs / "dev" / "block" / f"{major}:{minor}"
        if not block.exists() and source.startswith("/dev/"):
            block = self.ctx.sysfs / "class" / "block" / Path(source).name
        if not block.exists():
            return []
        return self._leaves(block.resolve())

    def _leaves(self, node: Path) -> list[str]:
        slaves = node / "slaves"
        below = sorted(slaves.iterdir()) if slaves.is_dir() else []
        if below:
            return sorted({d for s in below for d in self._leaves(s.resolve())})
        if (node / "partition").exists():
            return [node.parent.name]
        return [node.name]

    def collect(self) -> DiskioReading:
        try:
            pressure = procfs.parse_pressure(procfs.read(self.ctx.procfs, "pressure", "io"))
        except FileNotFoundError:
            pressure = {}
        path = self.ctx.storage_path or mounts.nearest_existing(self.ctx.host_path(self.ctx.docker_data_root))
        where = mounts.locate(path, mounts.mount_table(self.ctx.procfs), self.ctx.rootfs)
        names = [] if where.network else self.disks_under(*where.dev, where.source)
        stats = procfs.parse_diskstats(procfs.read(self.ctx.procfs, "diskstats"))
        devices = tuple(Device(s.name, s.read_bytes, s.written_bytes, s.io_seconds)
                        for s in (stats.get(n) for n in names) if s is not None)
        if tuple(d.name for d in devices) != self._devices:  # the store moved: start afresh
            self.window = Window(BUSY_WINDOW)
            self._devices = tuple(d.name for d in devices)
        busy = None
        if devices:
            self.window.add(time.monotonic(), tuple(d.io_seconds for d in devices))
            delta = self.window.delta()
            if delta and delta[0] > 0:
                busy = min(1.0, max(delta[1]) / delta[0])
        return DiskioReading(
            devices=devices, fstype=where.fstype, network_filesystem=where.network,
            busy_ratio=busy, busy_window_seconds=(self.window.delta() or (0.0,))[0], pressure=pressure,
        )


COLLECTOR = DiskioCollector
