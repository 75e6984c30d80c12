"""The block devices under the image store: bytes moved and time busy.

Emits dtr_storage_device_read_bytes_total, dtr_storage_device_written_bytes_total,
dtr_storage_device_io_time_seconds_total, each {device}; dtr_storage_device_busy_ratio;
dtr_storage_network_filesystem; dtr_io_pressure_seconds_total{level}.
A partition counts as its disk; a device-mapper (LVM, dm-crypt) or md device as the
disks beneath it. A store on NFS has no local device and is reported as such.
Devices are found in sysfs only, never in this process's /dev (a container's holds
other nodes); device names are the kernel's (``cciss/c0d0``, which sysfs writes ``cciss!c0d0``).
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
        """Whole-disk names, as /proc/diskstats writes them, holding device major:minor (or the mount source)."""
        node = self._block_node(major, minor, source)
        return self._leaves(node.resolve()) if node else []

    def _block_node(self, major: int, minor: int, source: str) -> Path | None:
        by_dev = self.ctx.sysfs / "dev" / "block" / f"{major}:{minor}"
        if by_dev.exists():
            return by_dev
        # no block device of that number (btrfs gives every mount an anonymous 0:NN; another
        # mount namespace): the mount source names it, which sysfs can tell without /dev
        if not source.startswith("/dev/"):
            return None
        name = source[len("/dev/"):]
        if name.startswith("mapper/"):
            return self._dm_named(name[len("mapper/"):])
        if found := self._sysfs_block(name.replace("/", "!")):
            return found
        vg, sep, lv = name.partition("/")
        if sep and "/" not in lv:  # /dev/VG/LV: device-mapper calls it VG-LV, each '-' in a name doubled
            return self._dm_named(f"{vg.replace('-', '--')}-{lv.replace('-', '--')}")
        return None

    def _sysfs_block(self, name: str) -> Path | None:
        return next((d / name for d in self._block_roots() if (d / name).exists()), None)

    def _block_roots(self) -> tuple[Path, Path]:
        # /sys/class/block since 2.6.25; /sys/block on every kernel
        return self.ctx.sysfs / "class" / "block", self.ctx.sysfs / "block"

    def _dm_named(self, name: str) -> Path | None:
        """The dm-N whose device-mapper name is ``name`` (/dev/mapper/NAME)."""
        for node in (n for root in self._block_roots() for n in sorted(root.glob("dm-*"))):
            dm_name = procfs.read_optional(node, "dm", "name")
            if dm_name is not None and dm_name.strip() == name:
                return node
        return None

    def _leaves(self, node: Path) -> list[str]:
        slaves = node / "slaves"
        below = sorted(slaves.iterdir()) if slaves.is_dir() else []
        if below:
            return sorted({d for s in below for d in self._leaves(s.resolve())})
        disk = node.parent if (node / "partition").exists() else node
        return [disk.name.replace("!", "/")]

    def collect(self) -> DiskioReading:
        pressure = procfs.read_pressure(self.ctx.procfs, "io")  # {} without PSI or when reads fail
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
