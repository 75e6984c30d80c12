"""The Prometheus view of the DTR replica: its containers (Docker) and its API.

Formatting only, like exporter.exposition, whose FAMILIES table points here.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .readings import DockerReading, DtrApiReading

CONTAINER_LABELS = ["component", "container"]
CONTAINER_SERIES = (
    (GaugeMetricFamily, "dtr_container_memory_bytes",
     "Memory the container uses, page cache it could drop excluded (as docker stats).", "memory_bytes"),
    (CounterMetricFamily, "dtr_container_cpu_seconds", "CPU time the container used.", "cpu_seconds"),
    (CounterMetricFamily, "dtr_container_network_receive_bytes",
     "Bytes the container received (containers with their own network namespace).", "network_receive_bytes"),
    (CounterMetricFamily, "dtr_container_network_transmit_bytes",
     "Bytes the container sent (containers with their own network namespace).", "network_transmit_bytes"),
)


def docker(r: DockerReading) -> Iterator[Metric]:
    if not r.available:
        return
    if r.replica_id:
        info = GaugeMetricFamily("dtr_info", "The DTR replica on this node; always 1.",
                                 labels=["version", "replica_id", "storage_driver"])
        info.add_metric([r.version or "", r.replica_id, r.storage_driver or ""], 1)
        yield info
    up = GaugeMetricFamily("dtr_container_up", "1 when the registry container is running, 0 when it exists "
                           "but is stopped.", labels=CONTAINER_LABELS)
    for c in r.containers:
        up.add_metric([c.component, c.name], 1 if c.running else 0)
    yield up
    for kind, name, doc, attr in CONTAINER_SERIES:
        family = kind(name, doc, labels=CONTAINER_LABELS)
        for c in r.containers:
            value = getattr(c, attr)
            if value is not None:
                family.add_metric([c.component, c.name], value)
        yield family


def dtr_api(r: DtrApiReading) -> Iterator[Metric]:
    yield GaugeMetricFamily("dtr_api_up", "1 when every DTR API call got a well-formed answer.", 1 if r.up else 0)
    if r.healthy is not None:
        yield GaugeMetricFamily("dtr_api_healthy", "The DTR replica's own verdict from /_ping.", 1 if r.healthy else 0)
    health = GaugeMetricFamily("dtr_replica_healthy", "1 when cluster_status reports the replica OK.",
                               labels=["replica_id"])
    for replica, ok in sorted(r.replica_health.items()):
        health.add_metric([replica], 1 if ok else 0)
    yield health
    if r.issues is not None:
        issues = GaugeMetricFamily("dtr_cluster_issues", "Current issues cluster_status reports.",
                                   labels=["critical"])
        issues.add_metric(["true"], r.critical_issues or 0)
        issues.add_metric(["false"], r.issues - (r.critical_issues or 0))
        yield issues
    if r.storage_driver:
        driver = GaugeMetricFamily("dtr_api_storage_driver_info", "The registry storage driver DTR's settings "
                                   "name; always 1.", labels=["driver"])
        driver.add_metric([r.storage_driver], 1)
        yield driver
