"""The registry's image store: what it holds, how fast it grows, when it fills.

Emits, each {storage}: dtr_storage_blobs, dtr_storage_blob_bytes, dtr_storage_repositories,
dtr_storage_uploads, dtr_storage_upload_bytes, dtr_storage_upload_oldest_age_seconds,
dtr_storage_abandoned_uploads, dtr_storage_abandoned_upload_bytes, dtr_storage_data_bytes,
dtr_storage_scan_errors, dtr_storage_scan_duration_seconds, dtr_storage_scan_timestamp_seconds,
dtr_storage_scan_files, dtr_storage_growth_bytes_per_second, dtr_storage_full_forecast_seconds;
dtr_storage_device_info{storage, device} ties the diskio collector's {device} series to the store.

The storage path comes with every run (``found``), because Docker discovery
may set or change it; the sampler runs this collector again at once when it
does. The walk is incremental and reads storage.scan_concurrency directories at
once (see exporter.scan); its index of known digests is a directory next to the
history file in storage.state_dir, else a private temporary directory.

A scan that fails or overruns keeps the last reading published (success 0):
dtr_storage_scan_timestamp_seconds then ages, which DTRStorageScanStale
watches, instead of vanishing with every other store series.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import blockdev, dtr, mounts
from ..families import gauge
from ..forecast import Sample, forecast
from ..history import History
from ..scan import Scanner, resolve_v2
from ..storage_id import storage_id
from . import NOTHING, Found, PartialReading, Spec

SPEC = Spec(True, 300, 3600, "the registry's storage tree under --storage.path (background walk)",
            follows_store=True)


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
    critical_free_bytes: float = 0.0  # the forecast's floor: the critical disk_free threshold
    growth_bytes_per_second: float | None = None
    full_forecast_seconds: float | None = None  # None unknown, math.inf not growing
    history_samples: int = 0
    devices: tuple[str, ...] = ()  # block devices under the store, as the diskio collector names them


class StorageCollector:
    name = "storage"
    keep_last_reading = True  # see the module docstring: a failed scan must not hide how old the last one is

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        self._key: tuple[Path, str] | None = None
        self._scanner: Scanner | None = None
        self._history: History | None = None

    @property
    def progress(self) -> int:
        """Files examined so far by the running scan (for a terminal progress line)."""
        return self._scanner.progress if self._scanner else 0

    def _critical_free(self) -> float:
        disk_free = self.config.thresholds_in_force().get("disk_free", {})
        return disk_free.get("critical", disk_free.get("warning", 0.0))

    def collect(self, found: Found = NOTHING) -> StorageReading:
        root = found.storage_path
        if root is None:
            return StorageReading(detail="no storage path: set --storage.path, or let the exporter reach the Docker socket to find the registry's volume")
        v2 = resolve_v2(Path(root))
        if v2 is None:
            raise FileNotFoundError(f"{root}: no docker/registry/v2 (nor blobs/, repositories/) here")
        sid = storage_id(Path(root), self.ctx.procfs, self.ctx.rootfs)
        elsewhere = self._left_to_another_replica(Path(root), found)
        if elsewhere:
            return StorageReading(path=str(root), detail=elsewhere)
        if self._key != (v2, sid):  # a new store: start afresh
            self._key = (v2, sid)
            if self._scanner:
                self._scanner.close()
            self._history = History(self.config.state_dir, sid)
            # the scanner's index of known digests sits next to the history (none: a private temporary one)
            index = self._history.path.with_name(self._history.path.stem.replace("history", "index", 1)) \
                if self._history.path else None
            self._scanner = Scanner(v2, self.config.scan_rate, index_dir=index,
                                    concurrency=self.config.scan_concurrency)
        started, start_clock = time.monotonic(), time.time()
        result = self._scanner.scan()
        duration = time.monotonic() - started
        st = os.statvfs(root)
        avail = st.f_bavail * st.f_frsize
        now = time.time()
        uploads = result.uploads
        data = result.blob_bytes + uploads.bytes
        self._history.add(Sample(now, data, avail))
        critical = self._critical_free()
        fc = forecast(self._history.samples, now, critical)
        reading = StorageReading(
            storage=sid, path=str(root), blobs=result.blobs, blob_bytes=result.blob_bytes,
            repositories=result.repositories, uploads=uploads.count, upload_bytes=uploads.bytes,
            upload_oldest_age_seconds=None if uploads.oldest_started is None else max(0.0, now - uploads.oldest_started),
            abandoned_uploads=uploads.abandoned, abandoned_upload_bytes=uploads.abandoned_bytes,
            data_bytes=data, scan_errors=result.errors, scan_full=result.full,
            scan_prefixes_changed=result.prefixes_changed, scan_files=result.files_examined,
            scan_duration_seconds=duration, scan_timestamp_seconds=start_clock, avail_bytes=avail,
            critical_free_bytes=critical, growth_bytes_per_second=fc.growth_bytes_per_second,
            full_forecast_seconds=fc.seconds_to_full,
            history_samples=len(self._history.samples), devices=self._devices(v2),
        )
        problems = [f"{result.errors} unreadable entries under {v2}"] if result.errors else []
        if self._history.warning:
            problems.append(self._history.warning)
        if self._scanner.warning:
            problems.append(self._scanner.warning)
        if problems:
            raise PartialReading(reading, "; ".join(problems))
        return reading

    def _left_to_another_replica(self, root: Path, found: Found) -> str | None:
        """Why this replica does not walk a shared network store (storage.scan_shared), or None when it does."""
        where = mounts.locate(root, mounts.mount_table(self.ctx.procfs), self.ctx.rootfs)
        if dtr.scan_shared_store(self.config.scan_shared, where.network, found.replica_id, found.replicas):
            return None
        walker = f"replica {min(found.replicas)}" if found.replicas else "another replica"
        return f"shared store on {where.fstype} is walked by {walker} (storage.scan_shared={self.config.scan_shared})"

    def _devices(self, v2: Path) -> tuple[str, ...]:
        try:
            where = mounts.locate(v2, mounts.mount_table(self.ctx.procfs), self.ctx.rootfs)
        except (OSError, ValueError):
            return ()
        if where.network:
            return ()
        return tuple(blockdev.disks_under(self.ctx.sysfs, *where.dev, where.source))


COLLECTOR = StorageCollector

GAUGES = (
    ("dtr_storage_blobs", "Blobs in the store (blobs/<alg>/<xx>/<digest>/data).", "blobs"),
    ("dtr_storage_blob_bytes", "Bytes of blob data (file sizes).", "blob_bytes"),
    ("dtr_storage_repositories", "Repositories (nested names count once each).", "repositories"),
    ("dtr_storage_uploads", "Uploads in progress or abandoned (repositories/*/_uploads/<id>).", "uploads"),
    ("dtr_storage_upload_bytes", "Bytes held by uploads in progress or abandoned.", "upload_bytes"),
    ("dtr_storage_upload_oldest_age_seconds", "Age of the oldest upload still on disk.", "upload_oldest_age_seconds"),
    ("dtr_storage_abandoned_uploads", "Uploads not written to for an hour.", "abandoned_uploads"),
    ("dtr_storage_abandoned_upload_bytes", "Bytes held by uploads not written to for an hour.",
     "abandoned_upload_bytes"),
    ("dtr_storage_data_bytes", "Blob plus upload bytes: what the store holds.", "data_bytes"),
    ("dtr_storage_scan_errors", "Directories or files the last scan could not read.", "scan_errors"),
    ("dtr_storage_scan_files", "Digest directories and uploads examined by the last scan "
     "(small on an incremental rescan).", "scan_files"),
    ("dtr_storage_scan_duration_seconds", "How long the last scan took.", "scan_duration_seconds"),
    ("dtr_storage_scan_timestamp_seconds", "When the last scan started, Unix seconds.", "scan_timestamp_seconds"),
    ("dtr_storage_growth_bytes_per_second", "Growth of the data bytes: Theil-Sen slope between garbage "
     "collections over the last week.", "growth_bytes_per_second"),
    ("dtr_storage_full_forecast_seconds", "Time until the store's filesystem has less available than the "
     "critical disk_free threshold at the measured growth; +Inf when not growing.", "full_forecast_seconds"),
)


def families(r: StorageReading) -> Iterator[Metric]:
    """Every series carries ``{storage}``, the stable id of exporter.storage_id."""
    if r.storage is None:
        return
    for name, doc, attr in GAUGES:
        value = getattr(r, attr)
        if value is not None:
            yield gauge(name, doc, value, {"storage": r.storage})
    devices = GaugeMetricFamily("dtr_storage_device_info", "1 for each block device under the store: joins "
                                "dtr_storage_device_* {device} to {storage}.", labels=["storage", "device"])
    for device in r.devices:
        devices.add_metric([r.storage, device], 1)
    yield devices
