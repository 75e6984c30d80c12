"""The block devices under the image store: bytes moved and time busy.

Emits dtr_storage_device_read_bytes_total, dtr_storage_device_written_bytes_total,
dtr_storage_device_io_time_seconds_total, each {device}; dtr_storage_device_busy_ratio;
dtr_storage_network_filesystem; dtr_io_pressure_seconds_total{level}.
A partition counts as its disk; a device-mapper (LVM, dm-crypt) or md device as the
disks beneath it (exporter.blockdev). A store on NFS has no local device and is reported as such.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from .. import blockdev, mounts, procfs
from ..families import gauge, pressure
from ..window import Window
from . import NOTHING, Found, Spec

SPEC = Spec(True, 15, 10, "/proc/diskstats, /sys/block/*/slaves, /proc/pressure/io for the storage device",
            follows_store=True)
BUSY_WINDOW = 300.0


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


class DiskioCollector:
    name = "diskio"

    def __init__(self, ctx):
        self.ctx = ctx
        self.window = Window(BUSY_WINDOW)
        self._devices: tuple[str, ...] = ()

    def collect(self, found: Found = NOTHING) -> DiskioReading:
        psi = procfs.read_pressure(self.ctx.procfs, "io")  # {} without PSI or when reads fail
        path = found.storage_path or mounts.nearest_existing(self.ctx.host_path(self.ctx.docker_data_root))
        where = mounts.locate(path, mounts.mount_table(self.ctx.procfs), self.ctx.rootfs)
        names = [] if where.network else blockdev.disks_under(self.ctx.sysfs, *where.dev, where.source)
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
            busy_ratio=busy, busy_window_seconds=(self.window.delta() or (0.0,))[0], pressure=psi,
        )


COLLECTOR = DiskioCollector


def families(d: DiskioReading) -> Iterator[Metric]:
    fields = (
        ("dtr_storage_device_read_bytes", "Bytes read from a disk under the image store.", "read_bytes"),
        ("dtr_storage_device_written_bytes", "Bytes written to a disk under the image store.", "written_bytes"),
        ("dtr_storage_device_io_time_seconds", "Time a disk under the image store was busy with I/O.",
         "io_seconds"),
    )
    for name, doc, attr in fields:
        family = CounterMetricFamily(name, doc, labels=["device"])
        for dev in d.devices:
            family.add_metric([dev.name], getattr(dev, attr))
        yield family
    if d.busy_ratio is not None:
        yield gauge("dtr_storage_device_busy_ratio",
                    "Busiest storage disk's share of time doing I/O over the last window.", d.busy_ratio)
    yield gauge("dtr_storage_network_filesystem", "1 when the image store is on a network filesystem.",
                1 if d.network_filesystem else 0, {"fstype": d.fstype})
    if d.pressure:
        yield pressure("dtr_io_pressure_seconds", "Time tasks stalled waiting for I/O (PSI).", d.pressure)
