"""The hot set against a real Distribution registry (Debian docker-registry) on a disk-backed store.

Push a set of blobs, pull a known subset H several times: the log method's
1 h hot bytes are the bytes of H (within 10 %), not the pushed total; the
atime method on the same store sees H in its 24 h window; a noatime store and
an unreadable log fall back and say so. The hit-ratio finding of
docs/workload.md (rchar counts a push's socket reads) is measured here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from exporter import cgroups, hotset, recommend
from tests.registry import LoggingRegistry, memory_cgroup
from tests.support import require, unavailable

MIB = 2**20
SIZES = [3 * MIB, 1 * MIB, 5 * MIB, 2 * MIB, 4 * MIB, 6 * MIB, 1 * MIB, 3 * MIB, 2 * MIB, 8 * MIB]
HOT = (0, 3, 4, 8)  # the subset H pulled


@pytest.fixture
def disk_dir():
    """A directory on /var/tmp: disk-backed, unlike a tmpfs /tmp, and mounted as the host mounts it."""
    path = Path(tempfile.mkdtemp(prefix="dtr-hotset-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def push_and_pull(registry: LoggingRegistry, pulls: int = 3) -> tuple[list[str], int, int]:
    """Push SIZES, pull H ``pulls`` times; (digests, bytes of H, bytes pushed)."""
    digests = [registry.push_blob("team/app", os.urandom(size)) for size in SIZES]
    for _ in range(pulls):
        for i in HOT:
            registry.pull_blob("team/app", digests[i])
    return digests, sum(SIZES[i] for i in HOT), sum(SIZES)


def v2_of(registry: LoggingRegistry) -> Path:
    return registry.storage / "docker/registry/v2"


@pytest.mark.parametrize("log_format, accesslog", [("text", True), ("json", False)])
def test_the_log_method_measures_the_pulled_subset_not_the_store(disk_dir, log_format, accesslog):
    with LoggingRegistry(disk_dir, log_format=log_format, accesslog=accesslog) as registry:
        _, hot_bytes, pushed = push_and_pull(registry)
        source = hotset.HotSetSource(v2_of(registry), registry.log_path)
        hot = source.measure()
    assert (hot.method, hot.reason, hot.unsized) == ("log", "", 0)
    for window in ("1h", "24h"):
        assert abs(hot.windows[window].bytes - hot_bytes) <= 0.1 * hot_bytes, (window, hot, hot_bytes, pushed)
        assert hot.windows[window].blobs == len(HOT)
    assert hot.windows["1h"].bytes < 0.5 * pushed
    assert source.log.served_bytes() == 3 * hot_bytes  # three pulls of H, each counted once


def test_the_log_is_followed_incrementally(disk_dir):
    with LoggingRegistry(disk_dir) as registry:
        digests = [registry.push_blob("team/app", os.urandom(size)) for size in SIZES]
        source = hotset.HotSetSource(v2_of(registry), registry.log_path)
        assert source.measure().windows["1h"].blobs == 0
        registry.pull_blob("team/app", digests[5])
        registry.http.get(f"{registry.url}/v2/team/app/blobs/{digests[9]}", headers={"Range": "bytes=0-99"})
        registry.http.head(f"{registry.url}/v2/team/app/blobs/{digests[2]}")
        hot = source.measure()
    # a ranged GET (206) reads the blob; a HEAD does not
    assert hot.windows["1h"] == hotset.Window(SIZES[5] + SIZES[9], 2)


def test_atime_on_a_relatime_store_sees_the_blobs_read_since_written(disk_dir):
    policy = hotset.atime_policy(os.statvfs(disk_dir).f_flag)
    if policy == "noatime":
        unavailable("/var/tmp is mounted noatime here: the relatime case cannot be shown")
    with LoggingRegistry(disk_dir) as registry:
        digests = [registry.push_blob("team/app", os.urandom(size)) for size in SIZES]
        unread = [registry.blob_file(d) for d in digests]
        # a push writes the blob and does not read it back: atime has not passed mtime
        assert all(os.stat(f).st_atime_ns <= os.stat(f).st_mtime_ns for f in unread)
        for i in HOT:
            registry.pull_blob("team/app", digests[i])
        hot = hotset.HotSetSource(v2_of(registry), disk_dir / "absent.log").measure()
    assert hot.method == "atime"
    assert "absent.log: No such file or directory" in hot.reason and policy in hot.reason
    assert hot.windows["24h"] == hotset.Window(sum(SIZES[i] for i in HOT), len(HOT))
    assert ("1h" in hot.windows) == (policy == "strictatime")


def test_an_unreadable_log_falls_back_and_says_so(disk_dir):
    with LoggingRegistry(disk_dir) as registry:
        push_and_pull(registry, pulls=1)
        hot = hotset.HotSetSource(v2_of(registry), disk_dir).measure()  # a directory: read() fails
    assert hot.method in ("atime", "none")
    assert hot.reason.startswith(f"registry log {disk_dir}: Is a directory")


@pytest.fixture
def noatime_dir(disk_dir):
    """A small ext4 image, loop-mounted with -o noatime."""
    mkfs, mount = require("mkfs.ext4"), require("mount")
    image, point = disk_dir / "store.img", disk_dir / "mnt"
    point.mkdir()
    with image.open("wb") as f:
        f.truncate(96 * MIB)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True, capture_output=True)
    done = subprocess.run([mount, "-o", "loop,noatime", str(image), str(point)], capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"cannot loop-mount an ext4 image (needs root and /dev/loop*): {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run([require("umount"), str(point)], check=True)


def test_a_noatime_store_without_a_log_says_nothing_and_why(noatime_dir):
    assert hotset.atime_policy(os.statvfs(noatime_dir).f_flag) == "noatime"
    with LoggingRegistry(noatime_dir) as registry:
        digests, hot_bytes, _ = push_and_pull(registry, pulls=1)
        read = registry.blob_file(digests[HOT[0]])
        assert os.stat(read).st_atime_ns <= os.stat(read).st_mtime_ns  # the pull left atime alone
        without_log = hotset.HotSetSource(v2_of(registry), None).measure()
        with_log = hotset.HotSetSource(v2_of(registry), registry.log_path).measure()
    assert (without_log.method, without_log.windows) == ("none", {})
    assert without_log.reason == "no registry log configured; store mounted noatime, so atime says nothing"
    assert with_log.method == "log" and with_log.windows["1h"].bytes == hot_bytes


def io(pid: int) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split(":") for line in Path(f"/proc/{pid}/io").read_text().splitlines())}


def test_a_push_reads_as_cache_hits_in_rchar_but_not_in_the_file_ratio(disk_dir):
    with LoggingRegistry(disk_dir) as registry:
        source = hotset.HotSetSource(v2_of(registry), registry.log_path)
        source.measure()
        before = io(registry.proc.pid)
        digest = registry.push_blob("team/app", os.urandom(64 * MIB))
        pushed = io(registry.proc.pid)
        fd = os.open(registry.blob_file(digest), os.O_RDONLY)
        try:  # evict the blob: the pull that follows is a miss
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        registry.pull_blob("team/app", digest)
        after = io(registry.proc.pid)
        source.measure()
    push_rchar, push_read = pushed["rchar"] - before["rchar"], pushed["read_bytes"] - before["read_bytes"]
    assert push_rchar >= 64 * MIB and push_read < 8 * MIB  # socket reads: rchar, not read_bytes
    rchar, read = after["rchar"] - before["rchar"], after["read_bytes"] - before["read_bytes"]
    assert read >= 60 * MIB  # the pull came from the disk
    assert 1 - read / rchar > 0.45  # ...yet rchar says half the reads were cache hits
    assert recommend.file_hit_ratio(source.log.served_bytes(), read) < 0.1


def test_memory_room_of_a_registry_in_a_memory_cgroup(disk_dir):
    limit = 256 * MIB
    with memory_cgroup(limit) as group, LoggingRegistry(disk_dir, cgroup=group) as registry:
        push_and_pull(registry, pulls=1)
        room = cgroups.memory_room(Path("/proc"), Path("/sys"), registry.proc.pid)
        files = [(group / name).read_text() for name in ("memory.max", "memory.limit_in_bytes")
                 if (group / name).exists()]
        own = cgroups.memory_headroom(files[0], (group / "memory.stat").read_text())
    assert 0 < limit - own < 128 * MIB  # the registry's own anonymous memory: tens of MB
    assert room is not None and 0 < room <= own  # an ancestor's limit may bind harder, never looser
