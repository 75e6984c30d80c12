"""What the registry sent to and took from its clients.

Emits dtr_registry_served_bytes_total, dtr_registry_received_bytes_total,
dtr_registry_traffic_source{source}.

Sources, best first:
- ``registry_metrics``: the registry's own Prometheus endpoint (Distribution's
  ``http.debug.prometheus``), set with ``registry.metrics_url``: the sums of
  ``registry_http_response_size_bytes`` and ``registry_http_request_size_bytes``,
  i.e. HTTP bodies plus approximate headers, counted by the registry itself.
- ``netns``: when the registry runs in its own network namespace (a container,
  as DTR's registry does), that namespace's interface counters from
  /proc/<pid>/net/dev, loopback excluded: everything the container sent and
  received, which for a registry container is its client traffic.
- ``none``: a registry sharing the host's network namespace without a metrics
  endpoint; the host's counters would count every other service too, so
  nothing is reported rather than a wrong number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from ..processes import host_namespace, registry_pids
from . import NOTHING, Found, Spec

SPEC = Spec(True, 30, 10, "the registry's own metrics (--registry.metrics-url) or its container's network counters")

SERVED, RECEIVED = "registry_http_response_size_bytes_sum", "registry_http_request_size_bytes_sum"
MAX_BODY = 8 << 20


@dataclass(frozen=True)
class TrafficReading:
    source: str  # registry_metrics | netns | none
    served_bytes: float | None = None
    received_bytes: float | None = None
    detail: str = ""


def parse_registry_metrics(text: str) -> tuple[float, float]:
    """(served, received) bytes from the registry's exposition text, summed over every label set.

    client_python's parser, not a split on spaces: a sample may carry a timestamp after its value,
    and a label value may hold spaces, braces or escaped quotes. Text it cannot parse raises ValueError.
    """
    sums = {SERVED: 0.0, RECEIVED: 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return sums[SERVED], sums[RECEIVED]


def parse_net_dev(text: str) -> tuple[int, int]:
    """(transmitted, received) bytes over the non-loopback interfaces of /proc/<pid>/net/dev."""
    tx = rx = 0
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 9:
            raise ValueError(f"net/dev: malformed line {line!r}")
        if name.strip() != "lo":
            rx += int(fields[0])
            tx += int(fields[8])
    return tx, rx


class TrafficCollector:
    name = "traffic"

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        self.session = None  # made on first use: importing requests costs ~6 MiB resident, needed only with a URL

    def collect(self, found: Found = NOTHING) -> TrafficReading:
        url = self.config.registry_metrics_url
        if url:
            if self.session is None:
                import requests
                self.session = requests.Session()
            with self.session.get(url, timeout=5, stream=True, allow_redirects=False) as answer:
                answer.raise_for_status()
                body = answer.raw.read(MAX_BODY + 1, decode_content=True)
            if len(body) > MAX_BODY:
                raise ValueError(f"{url}: answer larger than {MAX_BODY} bytes")
            served, received = parse_registry_metrics(body.decode("utf-8", "replace"))
            return TrafficReading("registry_metrics", served, received)
        procfs = self.ctx.procfs
        own = host_namespace(procfs, "net")  # the host's, not the exporter's: see processes.host_namespace
        for pid in registry_pids(procfs, self.config.registry_process_names, self.config.registry_pids):
            try:
                if os.readlink(procfs / str(pid) / "ns" / "net") == own:
                    continue
                tx, rx = parse_net_dev((procfs / str(pid) / "net" / "dev").read_text(encoding="ascii"))
            except OSError:
                continue  # exited, or not ours to read
            return TrafficReading("netns", tx, rx, f"network namespace of pid {pid}")
        return TrafficReading("none", detail="set registry.metrics_url, or run the registry in a container")


COLLECTOR = TrafficCollector


def families(r: TrafficReading) -> Iterator[Metric]:
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
