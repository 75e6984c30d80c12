"""Which mount holds a path: real stat() of real paths against mount tables written for the case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter import mounts
from exporter.procfs import Mount
from tests.conftest import profile_dir


def dev_of(path: Path) -> str:
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def mount(mountpoint, dev, source="/dev/sda1", fstype="ext4", root="/", mount_id=1):
    return Mount(mount_id, 0, dev, root, str(mountpoint), fstype, source)


def test_the_deepest_mount_with_the_paths_device_wins(tmp_path):
    here = dev_of(tmp_path)
    table = [mount("/", here, "/dev/root", mount_id=1),
             mount(tmp_path.parent, here, "/dev/root", root="/srv/data", mount_id=2)]  # a bind mount
    found = mounts.locate(tmp_path, table)
    assert (found.mountpoint, found.root, found.source) == (str(tmp_path.parent), "/srv/data", "/dev/root")
    assert found.path == tmp_path


def test_a_deeper_mount_of_another_device_does_not_capture_the_path(tmp_path):
    here = dev_of(tmp_path)
    table = [mount("/", here, "/dev/root"), mount(tmp_path, "8:99", "/dev/sdz1", mount_id=2)]
    # a stale entry: the mount table says tmp_path is sdz1, stat says it is still the root device
    assert mounts.locate(tmp_path, table).source == "/dev/root"


def test_of_two_mounts_on_one_point_the_later_shadows_the_earlier(tmp_path):
    here = dev_of(tmp_path)
    table = [mount(tmp_path, here, "first", mount_id=5), mount(tmp_path, here, "second", mount_id=9)]
    assert mounts.locate(tmp_path, table).source == "second"


def test_without_a_device_match_the_mount_table_names_the_device(tmp_path):
    table = [mount("/", "8:1", "/dev/sda1", mount_id=1),
             mount(tmp_path.parent, "253:0", "/dev/mapper/vg-x", "xfs", mount_id=2)]
    found = mounts.locate(tmp_path, table)
    assert (found.source, found.fstype, found.dev) == ("/dev/mapper/vg-x", "xfs", (253, 0))


def test_rootfs_prefix_is_removed_from_the_mountpoint(tmp_path):
    host = tmp_path / "host"
    (host / "var" / "lib" / "docker").mkdir(parents=True)
    here = dev_of(tmp_path)
    table = [mount("/", here, "overlay", "overlay"), mount(host, here, "/dev/sda2", mount_id=2),
             mount(host / "var" / "lib" / "docker", here, "/dev/sdb1", mount_id=3)]
    found = mounts.locate(host / "var" / "lib" / "docker", table, rootfs=host)
    assert (found.mountpoint, found.source) == ("/var/lib/docker", "/dev/sdb1")
    assert mounts.locate(host, table, rootfs=host).mountpoint == "/"


def test_symlinks_are_followed_to_the_real_place(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    here = dev_of(tmp_path)
    table = [mount("/", here, "/dev/root"), mount(real, here, "/dev/store", mount_id=2)]
    assert mounts.locate(tmp_path / "link", table).source == "/dev/store"


def test_an_empty_table_still_answers(tmp_path):
    found = mounts.locate(tmp_path, [])
    assert (found.mountpoint, found.source, found.fstype) == ("/", "none", "unknown")


def test_a_missing_path_is_an_oserror(tmp_path):
    with pytest.raises(OSError):
        mounts.locate(tmp_path / "gone", [mount("/", dev_of(tmp_path))])


@pytest.mark.parametrize("fstype, network", [
    ("nfs4", True), ("nfs", True), ("cifs", True), ("fuse.sshfs", True), ("ceph", True),
    ("ext4", False), ("xfs", False), ("overlay", False), ("tmpfs", False)])
def test_network_filesystems(fstype, network):
    assert mounts.Located(Path("/"), "/", "x", fstype, (0, 0), "/").network is network


def test_nearest_existing(tmp_path):
    assert mounts.nearest_existing(tmp_path / "a" / "b" / "c") == tmp_path
    assert mounts.nearest_existing(tmp_path) == tmp_path
    assert mounts.nearest_existing(Path("/nonexistent-root-dir/x")) == Path("/")


def test_mount_table_reads_self_mountinfo_under_the_procfs_root():
    table = mounts.mount_table(profile_dir("large") / "proc")
    docker = next(m for m in table if m.mountpoint == "/var/lib/docker")
    assert (docker.dev, docker.fstype, docker.source) == ("253:0", "xfs", "/dev/mapper/vg0-docker")


def test_a_mountpoint_outside_ascii_is_found(tmp_path):
    store = tmp_path / "dtr données"
    store.mkdir()
    (tmp_path / "proc" / "self").mkdir(parents=True)
    here = dev_of(tmp_path)
    escaped = str(store).replace(" ", "\\040")
    (tmp_path / "proc" / "self" / "mountinfo").write_bytes(
        f"1 0 {here} / / rw - ext4 /dev/sda1 rw\n2 1 {here} / {escaped} rw - xfs /dev/sdb1 rw\n".encode())
    found = mounts.locate(store, mounts.mount_table(tmp_path / "proc"))
    assert (found.mountpoint, found.source) == (str(store), "/dev/sdb1")


def test_an_unrelated_truncated_mountinfo_line_does_not_hide_the_store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "proc" / "self").mkdir(parents=True)
    here = dev_of(tmp_path)
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        f"1 0 {here} / / rw - ext4 /dev/sda1 rw\n2 1 {here} / {store} rw - xfs /dev/sdb1 rw\n"
        "3 1 0:52 / /run/user/1000 rw,nosuid shared:40 - tmp")  # cut off mid-line
    found = mounts.locate(store, mounts.mount_table(tmp_path / "proc"))
    assert (found.mountpoint, found.source) == (str(store), "/dev/sdb1")
