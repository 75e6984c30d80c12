"""The Prometheus view of the image store, its page cache and the registry's traffic.

Formatting only, like exporter.exposition, whose FAMILIES table points here.
Every store series carries ``{storage}``, the stable id of exporter.storage_id.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .readings import PagecacheReading, StorageReading, TrafficReading

STORE_GAUGES = (
    ("dtr_storage_blobs", "Blobs in the store (blobs/<alg>/<xx>/<digest>/data).", "blobs"),
    ("dtr_storage_blob_bytes", "Bytes of blob data (file sizes).", "blob_bytes"),
    ("dtr_storage_repositories", "Repositories (nested names count once each).", "repositories"),
    ("dtr_storage_uploads", "Uploads in progress or abandoned (repositories/*/_uploads/<id>).", "uploads"),
    ("dtr_storage_upload_bytes", "Bytes held by uploads in progress or abandoned.", "upload_bytes"),
    ("dtr_storage_upload_oldest_age_seconds", "Age of the oldest upload still on disk.", "upload_oldest_age_seconds"),
    ("dtr_storage_abandoned_uploads", "Uploads not written to for an hour.", "abandoned_uploads"),
    ("dtr_storage_abandoned_upload_bytes", "Bytes held by uploads not written to for an hour.",
     "abandoned_upload_bytes"),
    ("dtr_storage_data_bytes", "Blob plus upload bytes: what the store holds.", "data_bytes"),
    ("dtr_storage_scan_errors", "Directories or files the last scan could not read.", "scan_errors"),
    ("dtr_storage_scan_files", "Digest directories and uploads examined by the last scan "
     "(small on an incremental rescan).", "scan_files"),
    ("dtr_storage_scan_duration_seconds", "How long the last scan took.", "scan_duration_seconds"),
    ("dtr_storage_scan_timestamp_seconds", "When the last scan started, Unix seconds.", "scan_timestamp_seconds"),
    ("dtr_storage_growth_bytes_per_second", "Growth of the data bytes: Theil-Sen slope between garbage "
     "collections over the last week.", "growth_bytes_per_second"),
    ("dtr_storage_full_forecast_seconds", "Time until the store's filesystem has less available than the "
     "critical disk_free threshold at the measured growth; +Inf when not growing.", "full_forecast_seconds"),
)


def _one(name: str, doc: str, storage: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        family = GaugeMetricFamily(name, doc, labels=["storage"])
        family.add_metric([storage], value)
        yield family


def storage(r: StorageReading) -> Iterator[Metric]:
    if r.storage is None:
        return
    for name, doc, attr in STORE_GAUGES:
        yield from _one(name, doc, r.storage, getattr(r, attr))
    devices = GaugeMetricFamily("dtr_storage_device_info", "1 for each block device under the store: joins "
                                "dtr_storage_device_* {device} to {storage}.", labels=["storage", "device"])
    for device in r.devices:
        devices.add_metric([r.storage, device], 1)
    yield devices


def pagecache(r: PagecacheReading) -> Iterator[Metric]:
    if r.storage is not None and r.resident_bytes is not None:
        yield from _one("dtr_storage_page_cache_bytes", f"Blob bytes resident in the page cache ({r.method}; "
                        "estimated from a sample of prefix directories on large stores).", r.storage,
                        r.resident_bytes)
        yield from _one("dtr_storage_page_cache_error_bytes", "Standard error of dtr_storage_page_cache_bytes "
                        "(0 when every blob was measured).", r.storage, r.resident_error_bytes)
        yield from _one("dtr_storage_page_cache_sampled_ratio", "Share of prefix directories measured for "
                        "dtr_storage_page_cache_bytes.", r.storage, r.sampled_ratio)
    if r.hit_ratio is not None:
        family = GaugeMetricFamily("dtr_page_cache_hit_ratio", "Share of reads served from the page cache over "
                                   "the last window: 1 - read_bytes/rchar of /proc/<pid>/io.", labels=["scope"])
        family.add_metric(["registry"], r.hit_ratio)
        yield family
    yield GaugeMetricFamily("dtr_registry_processes", "Registry processes found by name or pid.",
                            value=r.processes)


def traffic(r: TrafficReading) -> Iterator[Metric]:
    source = GaugeMetricFamily("dtr_registry_traffic_source", "1 for where the registry traffic counters come "
                               "from: registry_metrics, netns or none.", labels=["source"])
    source.add_metric([r.source], 1)
    yield source
    if r.served_bytes is not None:
        yield CounterMetricFamily("dtr_registry_served_bytes", "Bytes the registry sent to its clients.",
                                  value=r.served_bytes)
    if r.received_bytes is not None:
        yield CounterMetricFamily("dtr_registry_received_bytes", "Bytes the registry took from its clients.",
                                  value=r.received_bytes)
