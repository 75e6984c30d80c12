"""Page-cache residency and the registry's hit ratio, in a controlled experiment on a real registry.

Tolerances: after dropping the blob files' pages, resident bytes below 5 % of the blob bytes;
after a cold pull the hit ratio is at most 0.15 and residency at least 95 %; a warm pull gives a
hit ratio of at least 0.9. The slack covers the registry's own small reads (link files, request
bodies in rchar) and readahead rounding.
"""

from __future__ import annotations

import os

from exporter.collectors import Context, Found
from exporter.collectors.pagecache import PagecacheCollector
from exporter.config import Config
from tests.registry import disk_registry, disk_tmp  # noqa: F401 (the fixtures)

MiB = 1 << 20


def drop_pages(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def pagecache(reg) -> PagecacheCollector:
    config = Config(registry_process_names=[], registry_pids=[reg.proc.pid])
    return PagecacheCollector(Context(config=config))


def test_cold_then_warm_pulls(disk_registry):
    registry = disk_registry
    digests = [registry.push_blob("cache/me", os.urandom(8 * MiB)) for _ in range(4)]
    total = 32 * MiB
    for d in digests:
        drop_pages(registry.blob_file(d))

    cold = pagecache(registry)
    dropped = cold.collect(Found(storage_path=registry.storage))
    assert dropped.method in ("cachestat", "mincore")
    assert dropped.sampled_ratio == 1.0 and dropped.resident_error_bytes == 0
    assert dropped.resident_bytes < 0.05 * total
    assert dropped.processes == 1
    for d in digests:
        registry.pull_blob("cache/me", d)
    after_cold = cold.collect(Found(storage_path=registry.storage))
    assert after_cold.hit_ratio is not None and after_cold.hit_ratio <= 0.15
    assert after_cold.resident_bytes >= 0.95 * total

    warm = pagecache(registry)
    warm.collect(Found(storage_path=registry.storage))
    for d in digests:
        registry.pull_blob("cache/me", d)
    after_warm = warm.collect(Found(storage_path=registry.storage))
    assert after_warm.hit_ratio is not None and after_warm.hit_ratio >= 0.9
    assert after_warm.resident_bytes >= 0.95 * total


def test_no_registry_process_means_no_ratio(disk_registry):
    registry = disk_registry
    config = Config(registry_process_names=["no-such-process"], registry_pids=[])
    reading = PagecacheCollector(Context(config=config)).collect(Found(storage_path=registry.storage))
    assert reading.hit_ratio is None and reading.processes == 0
    assert reading.resident_bytes == 0  # a registry that has stored nothing yet is an empty store
