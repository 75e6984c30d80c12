"""Small builders of client_python metric families, shared by the collectors' ``families``."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


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


def pressure(name: str, doc: str, levels: dict[str, float]) -> CounterMetricFamily:
    """PSI stall seconds by level ("some", "full")."""
    family = CounterMetricFamily(name, doc, labels=["level"])
    for level, seconds in sorted(levels.items()):
        family.add_metric([level], seconds)
    return family
