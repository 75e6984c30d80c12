"""Which mount holds a path, seen through the mount table the way a user means it.

``statvfs`` and ``stat`` of the path itself are the truth (they follow bind
mounts and container overlays); the mount table only names what was found:
mountpoint, source device and filesystem type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import procfs

NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs",
    "9p", "lustre", "beegfs", "gpfs", "afs", "fuse.s3fs", "fuse.rclone", "fuse.cephfs",
})


@dataclass(frozen=True)
class Located:
    path: Path  # the path asked about, as this process sees it
    mountpoint: str  # as the host names it (rootfs prefix removed)
    source: str  # /dev/vda1, server:/export, overlay
    fstype: str
    dev: tuple[int, int]  # st_dev major, minor
    root: str  # the directory of the filesystem mounted there (bind mounts)

    @property
    def network(self) -> bool:
        return self.fstype in NETWORK_FSTYPES or self.fstype.startswith("nfs")


def mount_table(procfs_root: Path) -> list[procfs.Mount]:
    return procfs.parse_mountinfo(procfs.read(procfs_root, "self", "mountinfo"))


def locate(path: Path, mounts: list[procfs.Mount], rootfs: Path = Path("/")) -> Located:
    """The mount holding ``path``; raises OSError when the path is gone or unreadable."""
    real = os.path.realpath(path)
    st = os.stat(real)
    dev = (os.major(st.st_dev), os.minor(st.st_dev))
    key = f"{dev[0]}:{dev[1]}"
    holding = [(i, m) for i, m in enumerate(mounts) if _contains(m.mountpoint, real)]
    matching = [(i, m) for i, m in holding if m.dev == key] or holding
    # the deepest mountpoint wins; of equal ones the later mount, which shadows the earlier
    best = max(matching, key=lambda im: (len(im[1].mountpoint.rstrip("/")), im[0]), default=(0, None))[1]
    if best is None:
        return Located(Path(path), "/", "none", "unknown", dev, "/")
    # the mount's device, which is st_dev when that matched; when st_dev names no mount (a btrfs
    # subvolume, a view from another mount namespace) the mount table says what lies beneath
    major, _, minor = best.dev.partition(":")
    mount_dev = (int(major), int(minor))
    return Located(Path(path), _host_view(best.mountpoint, rootfs), best.source, best.fstype, mount_dev, best.root)


def _contains(mountpoint: str, path: str) -> bool:
    mp = mountpoint.rstrip("/")
    return not mp or path == mp or path.startswith(mp + "/")


def _host_view(mountpoint: str, rootfs: Path) -> str:
    root = str(rootfs).rstrip("/")
    if root and (mountpoint == root or mountpoint.startswith(root + "/")):
        return mountpoint[len(root):] or "/"
    return mountpoint


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor (Docker's data root may not exist yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
