"""Storage accounting, uploads, garbage collection, forecast and traffic against a real registry."""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from exporter.collectors import Context, Found
from exporter.collectors.storage import StorageCollector
from exporter.collectors.traffic import TrafficCollector
from exporter.config import Config
from exporter.scan import Scanner, resolve_v2
from tests.registry import registry  # noqa: F401 (the fixture)

MiB = 1 << 20


def collector(**settings) -> StorageCollector:
    return StorageCollector(Context(config=Config(**settings)))


def at(store) -> Found:
    """What the sampler hands the collector when the store is at ``store``."""
    return Found(storage_path=store)


def test_counts_and_bytes_equal_what_was_pushed(registry):
    pushed = {}
    for repo, tag, sizes in (("team/app/web", "v1", [300_000, 1_234_567]), ("library/base", "1", [77_777]),
                             ("team/app/web", "v2", [2 * MiB + 3])):
        pushed.update(registry.push_image(repo, tag, sizes)[1])
    reading = collector().collect(at(registry.storage))
    assert reading.blobs == len(pushed)
    assert reading.blob_bytes == sum(pushed.values())
    assert reading.repositories == 2  # nested names count once each
    assert reading.uploads == 0 and reading.upload_bytes == 0
    assert reading.data_bytes == reading.blob_bytes
    assert reading.scan_errors == 0
    assert reading.storage and reading.storage.endswith(str(registry.storage))
    # the v2 directory itself is accepted as the storage path too
    v2 = resolve_v2(registry.storage)
    assert collector().collect(at(v2)).blob_bytes == \
        sum(pushed.values())


def test_garbage_collection_lowers_the_numbers_and_the_forecast_holds(registry, tmp_path):
    keep = registry.push_image("keep/me", "latest", [500_000, 600_000])[1]
    digest, drop = registry.push_image("drop/me", "latest", [3 * MiB, MiB])
    state = tmp_path / "state"
    storage = collector(state_dir=str(state))
    before = storage.collect(at(registry.storage))
    assert before.blob_bytes == sum(keep.values()) + sum(drop.values())
    # an hour of history growing 1 MiB a minute up to now, as a restarted exporter would find it
    history = next(state.glob("storage-history-*.json"))
    now = time.time()
    samples = [[now - 3600 + 60 * i, before.data_bytes - (60 - i) * MiB, before.avail_bytes] for i in range(60)]
    history.write_text(json.dumps({"version": 1, "samples": samples}))
    storage = collector(state_dir=str(state))
    grown = storage.collect(at(registry.storage))
    assert grown.growth_bytes_per_second == pytest.approx(MiB / 60, rel=0.01)

    registry.delete_manifest("drop/me", digest)
    registry.garbage_collect()
    after = storage.collect(at(registry.storage))
    assert after.blobs == len(keep)
    assert after.blob_bytes == sum(keep.values())
    assert after.repositories == 2  # GC leaves the repository directory
    # the GC drop starts a new segment: the growth before it still stands, no negative or infinite forecast
    assert after.growth_bytes_per_second == pytest.approx(MiB / 60, rel=0.01)
    assert after.full_forecast_seconds is not None and 0 < after.full_forecast_seconds < math.inf
    # and the rescan that followed GC agrees with a full walk
    full = Scanner(resolve_v2(registry.storage)).scan(full=True)
    assert (full.blobs, full.blob_bytes) == (after.blobs, after.blob_bytes)


def test_abandoned_upload_is_visible(registry):
    registry.abandon_upload("big/push", os.urandom(3 * MiB))
    storage = collector()
    reading = storage.collect(at(registry.storage))
    assert reading.uploads == 1
    assert reading.upload_bytes == 3 * MiB
    assert reading.data_bytes == reading.blob_bytes + 3 * MiB
    assert 0 <= reading.upload_oldest_age_seconds < 60
    assert reading.abandoned_uploads == 0  # written to a moment ago
    data = next((registry.storage / "docker/registry/v2/repositories/big/push/_uploads").glob("*/data"))
    two_hours_ago = time.time() - 7200
    os.utime(data, (two_hours_ago, two_hours_ago))
    reading = storage.collect(at(registry.storage))
    assert (reading.abandoned_uploads, reading.abandoned_upload_bytes) == (1, 3 * MiB)


def test_served_bytes_grow_by_what_was_pulled(registry):
    """Tolerance: the pulled bytes plus at most 1 % and 64 KiB of headers."""
    digest = registry.push_blob("pull/me", os.urandom(8 * MiB))
    traffic = TrafficCollector(Context(config=Config(registry_metrics_url=registry.metrics_url)))
    before = traffic.collect()
    assert before.source == "registry_metrics"
    pulled = sum(registry.pull_blob("pull/me", digest) for _ in range(3))
    assert pulled == 24 * MiB
    after = traffic.collect()
    grown = after.served_bytes - before.served_bytes
    assert pulled <= grown <= pulled * 1.01 + 64 * 1024
    # received: pushing 4 MiB more shows up on the other counter
    registry.push_blob("pull/me", os.urandom(4 * MiB))
    took = traffic.collect().received_bytes - after.received_bytes
    assert 4 * MiB <= took <= 4 * MiB * 1.01 + 64 * 1024
