"""Which whole disks hold a block device, found in sysfs only.

A partition counts as its disk; a device-mapper (LVM, dm-crypt) or md device as
the disks beneath it (``slaves/``). Never this process's /dev: a container's holds
other nodes. Names are the kernel's, as /proc/diskstats writes them (``cciss/c0d0``,
which sysfs writes ``cciss!c0d0``). Shared by the diskio and storage collectors.
"""

from __future__ import annotations

from pathlib import Path

from . import procfs


def disks_under(sysfs: Path, major: int, minor: int, source: str) -> list[str]:
    """Whole-disk names holding device major:minor (or, failing that, the mount source)."""
    node = _block_node(sysfs, major, minor, source)
    return _leaves(node.resolve()) if node else []


def _block_node(sysfs: Path, major: int, minor: int, source: str) -> Path | None:
    by_dev = sysfs / "dev" / "block" / f"{major}:{minor}"
    if by_dev.exists():
        return by_dev
    # no block device of that number (btrfs gives every mount an anonymous 0:NN; another
    # mount namespace): the mount source names it, which sysfs can tell without /dev
    if not source.startswith("/dev/"):
        return None
    name = source[len("/dev/"):]
    if name.startswith("mapper/"):
        return _dm_named(sysfs, name[len("mapper/"):])
    if found := _sysfs_block(sysfs, name.replace("/", "!")):
        return found
    vg, sep, lv = name.partition("/")
    if sep and "/" not in lv:  # /dev/VG/LV: device-mapper calls it VG-LV, each '-' in a name doubled
        return _dm_named(sysfs, f"{vg.replace('-', '--')}-{lv.replace('-', '--')}")
    return None


def _sysfs_block(sysfs: Path, name: str) -> Path | None:
    return next((d / name for d in _block_roots(sysfs) if (d / name).exists()), None)


def _block_roots(sysfs: Path) -> tuple[Path, Path]:
    # /sys/class/block since 2.6.25; /sys/block on every kernel
    return sysfs / "class" / "block", sysfs / "block"


def _dm_named(sysfs: Path, name: str) -> Path | None:
    """The dm-N whose device-mapper name is ``name`` (/dev/mapper/NAME)."""
    for node in (n for root in _block_roots(sysfs) for n in sorted(root.glob("dm-*"))):
        dm_name = procfs.read_optional(node, "dm", "name")
        if dm_name is not None and dm_name.strip() == name:
            return node
    return None


def _leaves(node: Path) -> list[str]:
    slaves = node / "slaves"
    below = sorted(slaves.iterdir()) if slaves.is_dir() else []
    if below:
        return sorted({d for s in below for d in _leaves(s.resolve())})
    disk = node.parent if (node / "partition").exists() else node
    return [disk.name.replace("!", "/")]
