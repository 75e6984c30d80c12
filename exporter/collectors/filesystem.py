"""Filesystems holding Docker's data root and the registry's image store.

Emits dtr_filesystem_size_bytes, dtr_filesystem_avail_bytes, dtr_filesystem_files,
dtr_filesystem_files_free, each {role="storage"|"docker", mountpoint, device, fstype}.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import mounts
from . import NOTHING, Found, PartialReading, Spec

SPEC = Spec(True, 30, 10, "/proc/self/mountinfo and statvfs of Docker's data root and the storage path",
            follows_store=True)
LABELS = ["role", "mountpoint", "device", "fstype"]


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


class FilesystemCollector:
    name = "filesystem"

    def __init__(self, ctx):
        self.ctx = ctx

    def _measure(self, role: str, path, table) -> Filesystem:
        where = mounts.locate(path, table, self.ctx.rootfs)
        st = os.statvfs(where.path)
        return Filesystem(
            role=role, mountpoint=where.mountpoint, device=where.source, fstype=where.fstype,
            size_bytes=st.f_blocks * st.f_frsize, avail_bytes=st.f_bavail * st.f_frsize,
            files=st.f_files, files_free=st.f_favail, network=where.network,
        )

    def collect(self, found: Found = NOTHING) -> FilesystemReading:
        table = mounts.mount_table(self.ctx.procfs)
        wanted = [("docker", mounts.nearest_existing(self.ctx.host_path(self.ctx.docker_data_root)))]
        if found.storage_path is not None:
            wanted.append(("storage", found.storage_path))
        found, errors = [], []
        for role, path in wanted:
            try:
                found.append(self._measure(role, path, table))
            except OSError as err:
                errors.append(f"{role} {path}: {err.strerror or err}")
        reading = FilesystemReading(tuple(found))
        if errors:
            raise PartialReading(reading, "; ".join(errors))
        return reading


COLLECTOR = FilesystemCollector


def families(f: FilesystemReading) -> Iterator[Metric]:
    fields = (
        ("dtr_filesystem_size_bytes", "Filesystem size.", "size_bytes"),
        ("dtr_filesystem_avail_bytes", "Space available to unprivileged users.", "avail_bytes"),
        ("dtr_filesystem_files", "Inodes on the filesystem.", "files"),
        ("dtr_filesystem_files_free", "Inodes free for unprivileged users.", "files_free"),
    )
    for name, doc, attr in fields:
        family = GaugeMetricFamily(name, doc, labels=LABELS)
        for fs in f.filesystems:
            family.add_metric([fs.role, fs.mountpoint, fs.device, fs.fstype], getattr(fs, attr))
        yield family
