"""cachestat() and the mincore fallback agree with what was just read or dropped."""

from __future__ import annotations

import os

import pytest

from exporter import cachestat
from tests.registry import disk_tmp  # noqa: F401 (the fixture: tmpfs pages cannot be dropped)
from tests.support import unavailable

MiB = 1 << 20


@pytest.fixture
def blob(disk_tmp):
    path = disk_tmp / "data"
    path.write_bytes(os.urandom(4 * MiB + 123))  # a partial last page too
    return path


def drop(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


@pytest.mark.parametrize("method", ["cachestat", "mincore"])
def test_resident_after_drop_and_read(blob, method):
    if method == "cachestat" and cachestat.probe(str(blob)) != "cachestat":
        unavailable("kernel older than 6.5: cachestat() missing")
    size = blob.stat().st_size
    drop(blob)
    assert cachestat.resident_bytes(str(blob), method) == (0, size)
    with open(blob, "rb") as f:
        f.read(MiB)  # the first MiB (plus readahead)
    resident, _ = cachestat.resident_bytes(str(blob), method)
    assert MiB <= resident <= size
    blob.read_bytes()
    assert cachestat.resident_bytes(str(blob), method) == (size, size)


def test_methods_agree(blob):
    drop(blob)
    with open(blob, "rb") as f:
        f.seek(2 * MiB)
        f.read(64 * 1024)
    assert cachestat.resident_bytes(str(blob), "cachestat") == cachestat.resident_bytes(str(blob), "mincore")


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert cachestat.resident_bytes(str(empty), "mincore") == (0, 0)
    assert cachestat.resident_bytes(str(empty), "cachestat") == (0, 0)
    with pytest.raises(FileNotFoundError):
        cachestat.resident_bytes(str(tmp_path / "gone"), "cachestat")
    link = tmp_path / "link"
    link.symlink_to(empty)
    with pytest.raises(OSError):  # symlinks are not followed
        cachestat.resident_bytes(str(link), "cachestat")
