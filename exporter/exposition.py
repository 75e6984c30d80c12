"""The Prometheus view: readings and verdicts as metric families.

Nothing here reads a file or calls a collector. ``render`` caches the text
for each snapshot generation, so a scrape between two samples costs a lookup.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__
from .readings import CpuReading, DiskioReading, FilesystemReading, MemoryReading
from . import exposition_storage
from . import exposition_dtr
from .sampler import Snapshot
from .sizing import STATES, Verdict, evaluate


def gauge(name: str, doc: str, value: float | None = None, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


def counter(name: str, doc: str, value: float | None = None) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def _memory(m: MemoryReading) -> Iterator[Metric]:
    yield gauge("dtr_memory_total_bytes", "Usable RAM (MemTotal).", m.total_bytes)
    optional = (
        (gauge, "dtr_memory_available_bytes", "Memory available for new work without swapping "
         "(MemAvailable; estimated from MemFree, file cache and reclaimable slab before Linux 3.14).",
         m.available_bytes),
        (gauge, "dtr_memory_page_cache_bytes", "File-backed page cache: Active(file) + Inactive(file).",
         m.page_cache_bytes),
        (gauge, "dtr_memory_dirty_bytes", "Page cache waiting to be written back (Dirty).", m.dirty_bytes),
        (counter, "dtr_memory_major_faults", "Page faults that needed disk I/O (vmstat pgmajfault).", m.major_faults),
        (counter, "dtr_page_cache_refaults", "File pages read again soon after eviction (vmstat "
         "workingset_refault_file, workingset_refault before Linux 5.9): the page cache is too small.",
         m.refaults_file),
    )
    for family, name, doc, value in optional:
        if value is not None:  # the kernel did not say: absent, never a guess
            yield family(name, doc, value)
    if m.pressure:
        yield _pressure("dtr_memory_pressure_seconds", "Time tasks stalled waiting for memory (PSI).", m.pressure)


def _pressure(name: str, doc: str, levels: dict[str, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["level"])
    for level, seconds in sorted(levels.items()):
        family.add_metric([level], seconds)
    return family


def _cpu(c: CpuReading) -> Iterator[Metric]:
    yield gauge("dtr_cpu_cores", "CPUs DTR's registry may use: online CPUs limited by its cgroups' quotas and cpuset "
                "(never the exporter's own).",
                c.usable_cpus)
    yield gauge("dtr_cpu_host_cores", "CPUs online on the host.", c.host_cpus)
    modes = CounterMetricFamily("dtr_cpu_seconds", "CPU time spent in each mode, all CPUs summed.",
                                labels=["mode"])
    for mode, seconds in c.seconds_by_mode.items():
        modes.add_metric([mode], seconds)
    yield modes
    if c.busy_ratio is not None:
        yield gauge("dtr_cpu_busy_ratio", "Share of CPU time not idle over the last window.", c.busy_ratio)
    if c.pressure:
        yield _pressure("dtr_cpu_pressure_seconds", "Time runnable tasks waited for a CPU (PSI).", c.pressure)


FS_LABELS = ["role", "mountpoint", "device", "fstype"]


def _filesystem(f: FilesystemReading) -> Iterator[Metric]:
    fields = (
        ("dtr_filesystem_size_bytes", "Filesystem size.", "size_bytes"),
        ("dtr_filesystem_avail_bytes", "Space available to unprivileged users.", "avail_bytes"),
        ("dtr_filesystem_files", "Inodes on the filesystem.", "files"),
        ("dtr_filesystem_files_free", "Inodes free for unprivileged users.", "files_free"),
    )
    for name, doc, attr in fields:
        family = GaugeMetricFamily(name, doc, labels=FS_LABELS)
        for fs in f.filesystems:
            family.add_metric([fs.role, fs.mountpoint, fs.device, fs.fstype], getattr(fs, attr))
        yield family


def _diskio(d: DiskioReading) -> Iterator[Metric]:
    fields = (
        ("dtr_storage_device_read_bytes", "Bytes read from a disk under the image store.", "read_bytes"),
        ("dtr_storage_device_written_bytes", "Bytes written to a disk under the image store.", "written_bytes"),
        ("dtr_storage_device_io_time_seconds", "Time a disk under the image store was busy with I/O.",
         "io_seconds"),
    )
    for name, doc, attr in fields:
        family = CounterMetricFamily(name, doc, labels=["device"])
        for dev in d.devices:
            family.add_metric([dev.name], getattr(dev, attr))
        yield family
    if d.busy_ratio is not None:
        yield gauge("dtr_storage_device_busy_ratio",
                    "Busiest storage disk's share of time doing I/O over the last window.", d.busy_ratio)
    yield gauge("dtr_storage_network_filesystem", "1 when the image store is on a network filesystem.",
                1 if d.network_filesystem else 0, {"fstype": d.fstype})
    if d.pressure:
        yield _pressure("dtr_io_pressure_seconds", "Time tasks stalled waiting for I/O (PSI).", d.pressure)


# collector name -> the families its reading becomes
FAMILIES: dict[str, Callable[[object], Iterable[Metric]]] = {
    "memory": _memory,
    "cpu": _cpu,
    "filesystem": _filesystem,
    "diskio": _diskio,
    "storage": exposition_storage.storage,
    "pagecache": exposition_storage.pagecache,
    "traffic": exposition_storage.traffic,
    "docker": exposition_dtr.docker,
    "dtr_api": exposition_dtr.dtr_api,
}


def _exporter(snapshot: Snapshot) -> Iterator[Metric]:
    yield gauge("dtr_exporter_build_info", "The exporter's version.", 1, {"version": __version__})
    success = GaugeMetricFamily("dtr_exporter_collector_success",
                                "1 when the collector's last run succeeded.", labels=["collector"])
    duration = GaugeMetricFamily("dtr_exporter_collector_duration_seconds",
                                 "How long the collector's last run took.", labels=["collector"])
    last = GaugeMetricFamily("dtr_exporter_collector_last_success_timestamp_seconds",
                             "When the collector last succeeded, in Unix seconds.", labels=["collector"])
    for name, status in sorted(snapshot.statuses.items()):
        success.add_metric([name], 1 if status.ok else 0)
        duration.add_metric([name], status.duration)
        if status.last_success is not None:
            last.add_metric([name], status.last_success)
    yield from (success, duration, last)


def _sizing(verdicts: list[Verdict]) -> Iterator[Metric]:
    threshold = GaugeMetricFamily("dtr_sizing_threshold", "The threshold in force, in the check's unit.",
                                  labels=["check", "severity"])
    ok = GaugeMetricFamily("dtr_sizing_check_ok", "1 when the check passes, 0 when it fails; "
                           "absent while unknown or not applicable.", labels=["check", "severity"])
    state = GaugeMetricFamily("dtr_sizing_check_state", "1 for the check's current state "
                              "(ok, fail, unknown, not_applicable).", labels=["check", "severity", "state"])
    observed = GaugeMetricFamily("dtr_sizing_observed", "The value the check compares, in its unit.",
                                 labels=["check"])
    seen = set()
    for v in verdicts:
        threshold.add_metric([v.check, v.severity], v.threshold)
        if v.state in ("ok", "fail"):
            ok.add_metric([v.check, v.severity], 1 if v.state == "ok" else 0)
        for s in STATES:
            state.add_metric([v.check, v.severity, s], 1 if v.state == s else 0)
        if v.observed is not None and v.check not in seen:
            seen.add(v.check)
            observed.add_metric([v.check], v.observed)
    yield from (threshold, ok, state, observed)


def _parse_errors(snapshot: Snapshot) -> Metric:
    """Always published, empty on a clean host, so alert rules can rely on the family."""
    family = CounterMetricFamily("dtr_exporter_parse_errors", "Lines of a /proc or /sys file that could not "
                                 "be parsed and were skipped, by file.", labels=["file"])
    for file, count in sorted(snapshot.parse_errors.items()):
        family.add_metric([file], count)
    return family


class SnapshotCollector:
    """A client_python custom collector over one snapshot and its verdicts."""

    def __init__(self, snapshot: Snapshot, verdicts: list[Verdict]):
        self.snapshot, self.verdicts = snapshot, verdicts

    def collect(self) -> Iterator[Metric]:
        yield from _exporter(self.snapshot)
        yield _parse_errors(self.snapshot)
        for name, reading in sorted(self.snapshot.readings.items()):
            families = FAMILIES.get(name)
            if families:
                yield from families(reading)
        yield from _sizing(self.verdicts)


def to_text(snapshot: Snapshot, verdicts: list[Verdict]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, verdicts))
    return generate_latest(registry)


class Renderer:
    """Caches the exposition text and verdicts per snapshot generation."""

    def __init__(self, thresholds: dict[str, dict[str, float]]):
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self._cached: tuple[int, list[Verdict], bytes] | None = None

    def render(self, snapshot: Snapshot) -> tuple[list[Verdict], bytes]:
        with self._lock:
            if self._cached is None or self._cached[0] != snapshot.generation:
                verdicts = evaluate(snapshot.readings, self.thresholds)
                self._cached = (snapshot.generation, verdicts, to_text(snapshot, verdicts))
            return self._cached[1], self._cached[2]
