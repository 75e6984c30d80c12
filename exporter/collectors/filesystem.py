"""Filesystems holding Docker's data root and the registry's image store.

Emits dtr_filesystem_size_bytes, dtr_filesystem_avail_bytes, dtr_filesystem_files,
dtr_filesystem_files_free, each {role="storage"|"docker", mountpoint, device, fstype}.
"""

from __future__ import annotations

import os

from .. import mounts
from ..readings import Filesystem, FilesystemReading
from . import PartialReading


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

    def collect(self) -> FilesystemReading:
        table = mounts.mount_table(self.ctx.procfs)
        wanted = [("docker", mounts.nearest_existing(self.ctx.host_path(self.ctx.docker_data_root)))]
        if self.ctx.storage_path is not None:
            wanted.append(("storage", self.ctx.storage_path))
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
