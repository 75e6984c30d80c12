"""A stable id for an image store, the value of the ``{storage}`` label.

Several replicas mounting one shared store must produce the same id, and a
store must keep its id across reboots and device renames, so the id names the
filesystem, not the host's view of it:

- a network filesystem: ``nfs:server:/export/path/inside``;
- a local filesystem with a UUID (``/dev/disk/by-uuid`` under the rootfs, or
  the mount source given as ``UUID=``): ``uuid:<uuid>:/path/inside``;
- otherwise the mount source: ``dev:/dev/vda:/path/inside``.

``/path/inside`` is the store's path relative to the filesystem's root
(the mount's root for bind mounts plus the path below the mountpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import mounts


def _uuid_of(dev: tuple[int, int], rootfs: Path) -> str | None:
    by_uuid = rootfs / "dev" / "disk" / "by-uuid"
    try:
        entries = list(os.scandir(by_uuid))
    except OSError:
        return None
    want = os.makedev(*dev)
    for entry in entries:
        try:
            if os.stat(entry.path).st_rdev == want:
                return entry.name
        except OSError:
            continue  # a dangling link
    return None


def storage_id(path: Path, procfs: Path, rootfs: Path = Path("/")) -> str:
    """The id of the store at ``path`` (raises OSError when the path is gone)."""
    real = Path(os.path.realpath(path))
    where = mounts.locate(real, mounts.mount_table(procfs), rootfs)
    mountpoint_here = Path(str(rootfs).rstrip("/") + where.mountpoint) if where.mountpoint != "/" else rootfs
    try:
        below = real.relative_to(os.path.realpath(mountpoint_here))
    except ValueError:
        below = real.relative_to("/")
    inside = "/" + str(Path(where.root.lstrip("/")) / below).strip("/.")
    inside = inside if inside != "/" else "/"
    if where.network:
        return f"{where.fstype.split('.')[-1].rstrip('0123456789')}:{where.source.rstrip('/')}{inside}"
    uuid = _uuid_of(where.dev, rootfs)
    if uuid is None and where.source.startswith("UUID="):
        uuid = where.source[5:]
    if uuid:
        return f"uuid:{uuid}:{inside}"
    return f"dev:{where.source}:{inside}"
