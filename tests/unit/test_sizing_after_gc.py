"""storage_forecast_after_gc: the runway if garbage collection (--delete-untagged) freed what it can."""

from __future__ import annotations

import math

import pytest

from exporter import config as cfg, sizing
from exporter.collectors.dtr_api import DtrApiReading
from exporter.collectors.garbage import GarbageReading
from exporter.collectors.storage import StorageReading
from exporter.garbage import Reclaim

DAY = 86400
GB = 10**9
CRITICAL_FREE = 20 * GB
GROWTH = 10 * GB / DAY  # 10 GB a day


def storage(avail=80 * GB, growth=GROWTH, sid="dev:/dev/vdb:/"):
    seconds = None if growth is None else math.inf if growth <= 0 else max(0.0, avail - CRITICAL_FREE) / growth
    return StorageReading(storage=sid, avail_bytes=avail, critical_free_bytes=CRITICAL_FREE,
                          growth_bytes_per_second=growth, full_forecast_seconds=seconds)


def garbage(untagged=300 * GB, sid="dev:/dev/vdb:/"):
    return GarbageReading(storage=sid, unreferenced=Reclaim(1, untagged // 2), untagged=Reclaim(2, untagged))


def verdicts(readings, thresholds=None):
    thresholds = thresholds or cfg.Config().thresholds_in_force()
    return {(v.check, v.severity): v for v in sizing.evaluate(readings, thresholds)}


def test_a_store_half_garbage_needs_a_collection_not_a_disk():
    got = verdicts({"storage": storage(), "garbage": garbage()})
    # 60 GB above the floor at 10 GB a day: 6 days; with 300 GB freed: 36 days
    assert got[("storage_forecast", "warning")].state == sizing.FAIL
    after = got[("storage_forecast_after_gc", "warning")]
    assert after.state == sizing.OK and after.observed == pytest.approx(36 * DAY)
    assert "300 GB of garbage freed" in after.detail


def test_a_store_that_fills_even_after_gc_fails_both():
    got = verdicts({"storage": storage(), "garbage": garbage(untagged=5 * GB)})
    assert got[("storage_forecast_after_gc", "critical")].state == sizing.FAIL
    assert got[("storage_forecast_after_gc", "critical")].observed == pytest.approx(6.5 * DAY)
    assert got[("storage_forecast", "critical")].state == sizing.FAIL


def test_already_below_the_floor_counts_from_what_gc_frees():
    got = verdicts({"storage": storage(avail=10 * GB), "garbage": garbage(untagged=80 * GB)})
    assert got[("storage_forecast", "critical")].observed == 0
    assert got[("storage_forecast_after_gc", "critical")].observed == pytest.approx(7 * DAY)


def test_not_growing_is_never_full_either_way():
    got = verdicts({"storage": storage(growth=0.0), "garbage": garbage()})
    assert got[("storage_forecast_after_gc", "warning")].observed == math.inf


def test_without_a_garbage_reading_it_is_unknown():
    after = verdicts({"storage": storage()})[("storage_forecast_after_gc", "warning")]
    assert after.state == sizing.UNKNOWN and "no garbage estimate" in after.detail


def test_unknown_while_the_plain_forecast_is_unknown():
    after = verdicts({"storage": storage(growth=None), "garbage": garbage()})[("storage_forecast_after_gc", "warning")]
    assert after.state == sizing.UNKNOWN


def test_an_estimate_of_another_store_is_not_used():
    after = verdicts({"storage": storage(), "garbage": garbage(sid="nfs:other:/")})[("storage_forecast_after_gc",
                                                                                     "warning")]
    assert after.state == sizing.UNKNOWN and "another store" in after.detail


def test_not_applicable_where_storage_forecast_is_not():
    dtr = DtrApiReading(up=True, storage_driver="s3")
    got = verdicts({"storage": storage(), "garbage": garbage(), "dtr_api": dtr})
    assert got[("storage_forecast_after_gc", "warning")].state == sizing.NOT_APPLICABLE
    assert got[("storage_forecast", "warning")].state == sizing.NOT_APPLICABLE


def test_its_horizons_follow_storage_forecast_unless_set_apart():
    config = cfg.apply_mapping(cfg.Config(), {"thresholds": {"storage_forecast": {"warning": "60d", "critical": "14d"}}})
    assert config.thresholds_in_force()["storage_forecast_after_gc"] == {"warning": 60 * DAY, "critical": 14 * DAY}
    config = cfg.apply_mapping(config, {"thresholds": {"storage_forecast_after_gc": {"warning": "10d",
                                                                                      "critical": "5d"}}})
    assert config.thresholds_in_force()["storage_forecast_after_gc"] == {"warning": 10 * DAY, "critical": 5 * DAY}
    assert cfg.Config().thresholds_in_force()["storage_forecast_after_gc"] == {"warning": 30 * DAY,
                                                                                 "critical": 7 * DAY}
