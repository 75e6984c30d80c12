"""The DTR replica or Distribution registry on this node, found through the Docker Engine API.

Emits dtr_info{version, replica_id, storage_driver}; per container
{component, container}: dtr_container_up, dtr_container_memory_bytes,
dtr_container_cpu_seconds_total, dtr_container_network_receive_bytes_total,
dtr_container_network_transmit_bytes_total (network counters only for
containers with a network namespace of their own: a host-network container's
counters would be the whole host's).

Without ``--storage.path`` the registry's image store (the volume
``dtr-registry-<id>`` or a plain registry's ``/var/lib/registry`` mount)
becomes the storage path every storage-facing collector follows, re-read each
pass, so a recreated replica is followed. A plain registry whose environment
chooses another driver (``REGISTRY_STORAGE=s3``) has no local store: its
driver is reported and no store is followed. The running containers' pids and
HostConfig CPU limits go to ``Found.dtr_processes`` for the cpu collector, the registry's
json-file log (``LogPath``) to ``Found.registry_log`` for the workload collector. What it
finds travels in the reading's ``found``; a store once found stays found while the
registry container is away (an upgrade replacing it). No Docker socket at the default
place means "no Docker here": an empty reading and one debug line, no error.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .. import dtr
from ..engine import Engine, NotFound, parse_host
from . import NOTHING, Found, PartialReading, Spec

SPEC = Spec(True, 30, 20, "the Docker Engine API at --docker.host (DTR containers, volumes, stats)", discovers=2)

log = logging.getLogger(__name__)
DEFAULT_SOCKET = "/var/run/docker.sock"
# A stats call takes milliseconds with one-shot (API 1.41), about a second before it (dockerd
# waits for a second CPU sample); they run concurrently, the batch within this share of the timeout.
STATS_SHARE = 0.6
MAX_PARALLEL_STATS = 4  # a DTR replica has eight containers: two rounds on an old daemon


@dataclass(frozen=True)
class ContainerStats:
    name: str
    component: str
    running: bool
    memory_bytes: int | None = None  # usage minus inactive file cache, as `docker stats` shows it
    cpu_seconds: float | None = None
    network_receive_bytes: int | None = None  # None: host network, no counters of its own
    network_transmit_bytes: int | None = None


@dataclass(frozen=True)
class DockerReading:
    """The DTR replica (or plain registry) found through Docker. ``available`` False: no Docker here."""

    available: bool
    replica_id: str | None = None
    version: str | None = None
    storage_driver: str | None = None  # the DTR API's, else what the volume or the registry's environment says
    storage_source: str | None = None  # the image store as the host names it
    storage_volume: str | None = None
    containers: tuple[ContainerStats, ...] = ()
    found: Found = NOTHING  # what the other collectors follow: store, driver, replica, processes


def memory_bytes(stats: dict) -> int | None:
    """Usage minus inactive file cache, as `docker stats` computes it (cgroup v1 and v2)."""
    mem = stats.get("memory_stats") or {}
    if "usage" not in mem:
        return None
    detail = mem.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return max(0, mem["usage"] - inactive)


def cpu_seconds(stats: dict) -> float | None:
    usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return usage / 1e9 if usage is not None else None


def network_bytes(stats: dict) -> tuple[int | None, int | None]:
    networks = stats.get("networks")
    if not networks:
        return None, None
    return (sum(n.get("rx_bytes", 0) for n in networks.values()),
            sum(n.get("tx_bytes", 0) for n in networks.values()))


class DockerCollector:
    name = "docker"

    def __init__(self, ctx):
        self.ctx = ctx
        config = ctx.config
        self.host = getattr(config, "docker_host", None)
        settings = config.collectors.get("docker") if config else None
        self.timeout = settings.timeout if settings else 20.0
        validate(self.host)
        self._api = Engine(self.host or f"unix://{DEFAULT_SOCKET}", timeout=max(1.0, self.timeout * STATS_SHARE))
        self._pool = ThreadPoolExecutor(MAX_PARALLEL_STATS, thread_name_prefix="docker-stats")
        self._said_absent = False
        self._store_path: Path | None = None  # the last store found, and its driver
        self._driver: str | None = None

    def collect(self, found: Found = NOTHING) -> DockerReading:
        """``found``: what the other discoverers said (the DTR API's driver wins over Docker's guess)."""
        if self.host is None and not os.path.exists(DEFAULT_SOCKET):
            if not self._said_absent:
                log.debug("no Docker socket; the docker collector reports nothing", extra={"socket": DEFAULT_SOCKET})
                self._said_absent = True
            return DockerReading(available=False)
        api = self._api
        listed = api.containers()
        identified = [(c, m) for c in listed if (m := dtr.identify(c)) is not None]
        replica = dtr.choose_replica([m for _, m in identified])
        ours = [(c, m) for c, m in identified if m.replica_id == replica or m.replica_id is None]
        inspected = self._inspect(api, [m for _, m in ours if m.running or m.replica_id is None])
        processes = tuple(
            dtr.process_of(m, inspected[m.container_id]) for _, m in ours if m.running and m.container_id in inspected)
        store, driver = self._store(ours, inspected)
        if store is not None or driver:
            self._store_path = self.ctx.host_path(store.source) if store is not None else None
            self._driver = driver
        stats, missing = self._stats(api, [m for _, m in ours if m.running])
        containers = tuple(self._container(m, stats.get(m.container_id)) for _, m in ours)
        reading = DockerReading(
            available=True, replica_id=replica,
            version=dtr.version_of([m for _, m in ours if m.replica_id]) if replica else None,
            storage_driver=found.storage_driver or self._driver,
            storage_source=store.source if store else None, storage_volume=store.volume if store else None,
            containers=containers,
            found=Found(storage_path=self._store_path, storage_driver=self._driver, replica_id=replica,
                        dtr_processes=processes, registry_log=self._registry_log(ours, inspected)))
        if missing:
            raise PartialReading(reading, f"no stats within the time bound for {', '.join(sorted(missing))}")
        return reading

    @staticmethod
    def _inspect(api, members: list[dtr.Member]) -> dict[str, dict]:
        """``GET /containers/<id>/json`` of each member: its pid, HostConfig and Env."""
        out = {}
        for member in members:
            try:
                out[member.container_id] = api.inspect(member.container_id)
            except NotFound:
                continue  # removed since the listing
        return out

    @staticmethod
    def _store(ours, inspected: dict[str, dict]) -> tuple[dtr.Store | None, str | None]:
        """The store of the replica's registry (or the first plain registry) and what it says of the driver."""
        for container, member in sorted(ours, key=lambda cm: (cm[1].replica_id is None, not cm[1].running)):
            if member.component != "registry":
                continue
            if member.replica_id is None:
                driver = dtr.plain_driver(inspected.get(member.container_id) or {})
                if driver != "filesystem":
                    # its store is elsewhere: a /var/lib/registry volume (the image declares one) holds nothing
                    return None, driver
            store = dtr.store_of(container, member)
            if store is None:
                continue
            if store.nfs:
                return store, "filesystem"  # an NFS volume is the filesystem driver on NFS
            if member.replica_id is None:
                return store, "filesystem"
            return store, None  # DTR keeps its driver in its own settings: the dtr_api collector reads it
        return None, None

    def _registry_log(self, ours, inspected: dict[str, dict]) -> Path | None:
        """The running registry's json-file log (``LogPath``, a host path; empty under other log drivers)."""
        for _, member in sorted(ours, key=lambda cm: cm[1].replica_id is None):
            details = inspected.get(member.container_id) or {}
            log_type = ((details.get("HostConfig") or {}).get("LogConfig") or {}).get("Type")
            if member.component == "registry" and member.running and details.get("LogPath") and log_type == "json-file":
                return self.ctx.host_path(details["LogPath"])
        return None

    def _stats(self, api, running: list[dtr.Member]) -> tuple[dict[str, dict], list[str]]:
        futures = {self._pool.submit(api.stats, m.container_id): m for m in running}
        done, _ = wait(futures, timeout=self.timeout * STATS_SHARE)
        stats, missing = {}, []
        for future, member in futures.items():
            if future in done and future.exception() is None:
                stats[member.container_id] = future.result()
            elif future in done and isinstance(future.exception(), NotFound):
                continue  # removed since the listing (an upgrade replacing it): no stats, no fault
            else:
                missing.append(member.name)
                future.cancel()
        return stats, missing

    @staticmethod
    def _container(member: dtr.Member, stats: dict | None) -> ContainerStats:
        if not member.running or stats is None:
            return ContainerStats(member.name, member.component, member.running)
        rx, tx = network_bytes(stats)
        return ContainerStats(member.name, member.component, True, memory_bytes(stats), cpu_seconds(stats), rx, tx)


COLLECTOR = DockerCollector


def validate(host: str | None) -> None:
    """A ``docker.host`` that cannot work stops the exporter at start (exit 2), naming the key."""
    from ..config import ConfigError  # here: exporter.config imports the collectors package
    if host is not None:
        try:
            parse_host(host)
        except ValueError as err:
            raise ConfigError(f"docker.host: {err}") from None

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


def families(r: DockerReading) -> Iterator[Metric]:
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
