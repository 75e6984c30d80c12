"""The Prometheus view: readings and verdicts as metric families.

Nothing here reads a file or calls a collector: each reading becomes families
through its own collector module's ``families``; this module adds the
exporter's own families and the sizing verdicts. ``render`` caches that text
for each snapshot generation, so a scrape between two samples costs a lookup;
only the exporter's ``process_*`` families are made afresh for each scrape.
"""

from __future__ import annotations

import threading
from typing import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from . import __version__, collectors
from .families import gauge
from .sampler import Snapshot
from .sizing import DISK_HORIZON, STATES, Need, Verdict, evaluate, needs


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
        if v.threshold is not None:  # a scaled check (memory_hot_set) whose reading is not measured
            threshold.add_metric([v.check, v.severity], v.threshold)
        if v.state in ("ok", "fail"):
            ok.add_metric([v.check, v.severity], 1 if v.state == "ok" else 0)
        for s in STATES:
            state.add_metric([v.check, v.severity, s], 1 if v.state == s else 0)
        if v.observed is not None and v.check not in seen:
            seen.add(v.check)
            observed.add_metric([v.check], v.observed)
    yield from (threshold, ok, state, observed)


def _needs(needs: list[Need]) -> Iterator[Metric]:
    """The recommended sizes sizing computed; their inputs are published by the collectors they come from."""
    by = {n.resource: n for n in needs}
    names = {"memory": ("dtr_sizing_recommended_memory_bytes", "RAM this node needs for its own workload: DTR's "
                        "processes + the 24 h hot set + headroom, at least the KB's 4 GiB.", {}),
             "disk": ("dtr_sizing_recommended_disk_bytes", "Size the store's filesystem needs: bytes in use + "
                      "growth over the horizon + the KB's 30 GB free margin.", {"horizon": DISK_HORIZON}),
             "cpu": ("dtr_sizing_recommended_cpu_cores", "CPUs this node needs: sustained busy cores / the cpu_busy "
                     "threshold, at least the KB's two.", {})}
    for resource, (name, doc, labels) in names.items():
        need = by.get(resource)
        yield gauge(name, doc, need.value if need else None, labels)


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
            if name in collectors.MODULES:
                yield from collectors.families(name, reading)
        yield from _sizing(self.verdicts)
        yield from _needs(needs(self.snapshot.readings))


def to_text(snapshot: Snapshot, verdicts: list[Verdict]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, verdicts))
    return generate_latest(registry)


def _own_process() -> CollectorRegistry:
    """client_python's process_* families of this process: its own /proc, never --path.procfs (the host's)."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(proc="/proc", registry=registry)
    return registry


class Renderer:
    """Caches the exposition text and verdicts per snapshot generation; process_* are read per call."""

    def __init__(self, thresholds: dict[str, dict[str, float]]):
        self.thresholds = thresholds
        self._lock = threading.Lock()
        self._cached: tuple[int, list[Verdict], bytes] | None = None
        self._process = _own_process()

    def render(self, snapshot: Snapshot) -> tuple[list[Verdict], bytes]:
        with self._lock:
            if self._cached is None or self._cached[0] != snapshot.generation:
                verdicts = evaluate(snapshot.readings, self.thresholds)
                self._cached = (snapshot.generation, verdicts, to_text(snapshot, verdicts))
            verdicts, text = self._cached[1], self._cached[2]
        # CPU seconds and resident size move between samples: a few /proc/self reads (~0.1 ms) per scrape
        return verdicts, text + generate_latest(self._process)
