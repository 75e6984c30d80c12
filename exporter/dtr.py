"""Recognising a DTR replica and Distribution registries among Docker containers.

Pure functions over the dictionaries the Docker Engine API returns from
``GET /containers/json?all=1``: no socket, no clock. DTR 2.x names its
containers ``dtr-<component>-<replica_id>`` (the replica id is 12 hex
characters) and its image volume ``dtr-registry-<replica_id>``, or
``dtr-nfs-registry-<replica_id>`` when the store is on NFS. A plain
Distribution registry is an image ``registry`` or ``distribution/distribution``
with its store mounted at ``/var/lib/registry``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import procfs

NAME = re.compile(r"^/?dtr-(?P<component>[a-z][a-z0-9-]*?)-(?P<replica>[0-9a-f]{12})$")
STORE_VOLUME = re.compile(r"^dtr-(?P<nfs>nfs-)?registry-(?P<replica>[0-9a-f]{12})$")
PLAIN_REPOSITORIES = ("registry", "library/registry", "distribution/distribution")
PLAIN_STORE = "/var/lib/registry"


@dataclass(frozen=True)
class Member:
    """A container that belongs to the registry service on this node."""

    name: str
    component: str  # api, registry, nginx, ... ("registry" for a plain Distribution registry)
    replica_id: str | None  # None for a plain registry
    version: str | None  # the image tag
    running: bool
    container_id: str


@dataclass(frozen=True)
class Store:
    """Where a registry container keeps its images, as the host names it."""

    source: str  # host path: the volume's mount point or the bind mount's source
    volume: str | None
    nfs: bool


@dataclass(frozen=True)
class Process:
    """A running DTR or registry container's main process, handed to the cpu collector."""

    component: str
    container: str  # the container's name
    pid: int | None  # State.Pid: a host pid (0 or absent: not known)
    cpus: float | None  # the CPUs its HostConfig allows, None without a limit


def hostconfig_cpus(host_config: dict) -> float | None:
    """CPUs a container's HostConfig allows: NanoCpus, CpuQuota/CpuPeriod and CpusetCpus, the least."""
    limits = []
    if host_config.get("NanoCpus"):
        limits.append(host_config["NanoCpus"] / 1e9)
    if (host_config.get("CpuQuota") or 0) > 0:
        limits.append(host_config["CpuQuota"] / (host_config.get("CpuPeriod") or 100000))  # Docker's default period
    cpuset = host_config.get("CpusetCpus") or ""
    if cpuset.strip():
        limits.append(procfs.parse_cpulist(cpuset))
    return min(limits, default=None)


def process_of(member: Member, inspected: dict) -> Process:
    pid = (inspected.get("State") or {}).get("Pid") or None
    return Process(member.component, member.name, pid, hostconfig_cpus(inspected.get("HostConfig") or {}))


def split_image(image: str) -> tuple[str, str | None]:
    """``host:5000/docker/dtr-api:2.9.4@sha256:..`` -> (``docker/dtr-api``, ``2.9.4``)."""
    image = image.split("@", 1)[0]
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag, or the colon belonged to a registry host:port
        name, tag = image, ""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest  # drop the registry host
    return name, tag or None


def is_plain_registry(image: str) -> bool:
    repository, _ = split_image(image)
    return repository in PLAIN_REPOSITORIES


def _name(container: dict) -> str:
    names = container.get("Names") or [""]
    return names[0].lstrip("/")


def identify(container: dict) -> Member | None:
    """The registry component a listed container is, or None when it is none of ours."""
    name = _name(container)
    image = container.get("Image") or ""
    running = container.get("State") == "running"
    _, tag = split_image(image)
    match = NAME.match(name)
    if match:
        return Member(name, match["component"], match["replica"], tag, running, container.get("Id", ""))
    if is_plain_registry(image):
        return Member(name, "registry", None, tag, running, container.get("Id", ""))
    return None


def store_of(container: dict, member: Member) -> Store | None:
    """The image store a registry container mounts, or None."""
    if member.component != "registry":
        return None
    for mount in container.get("Mounts") or []:
        volume = mount.get("Name") or ""
        named = STORE_VOLUME.match(volume)
        if member.replica_id and named and named["replica"] == member.replica_id:
            return Store(mount.get("Source", ""), volume, bool(named["nfs"]))
        if member.replica_id is None and mount.get("Destination") == PLAIN_STORE:
            return Store(mount.get("Source", ""), volume or None, False)
    return None


def plain_driver(inspected: dict) -> str:
    """A plain registry's storage driver as its environment sets it (REGISTRY_STORAGE), else filesystem.

    A driver chosen only in a mounted config.yml is not seen: that registry reads as filesystem.
    """
    env = (inspected.get("Config") or {}).get("Env") or []
    chosen = [e.split("=", 1)[1] for e in env if e.startswith("REGISTRY_STORAGE=")]
    return chosen[-1].strip() if chosen and chosen[-1].strip() else "filesystem"


def choose_replica(members: list[Member]) -> str | None:
    """The replica this node runs: the one with a registry, then the most containers, then the lowest id."""
    counts: dict[str, tuple[int, int]] = {}
    for m in members:
        if m.replica_id:
            has_registry, n = counts.get(m.replica_id, (0, 0))
            counts[m.replica_id] = (max(has_registry, int(m.component == "registry")), n + 1)
    if not counts:
        return None
    return min(counts, key=lambda r: (-counts[r][0], -counts[r][1], r))


def version_of(members: list[Member]) -> str | None:
    """DTR's version: the tag most of the replica's images carry (an upgrade may be half done)."""
    tags = [m.version for m in members if m.version]
    return max(sorted(set(tags)), key=tags.count) if tags else None


def scan_shared_store(mode: str, network: bool, replica_id: str | None, replicas: tuple[str, ...]) -> bool:
    """Whether this replica walks its store, given that a store on a network filesystem may be shared.

    A local store is this node's own and is always walked. A network store:
    ``always`` and ``never`` say so; ``auto`` walks it only on the lowest
    replica id the DTR API reports, so one shared NFS export is walked once per
    cluster, not once per replica. Without the API's replica list, or when this
    replica is not in it, ``auto`` walks: the same figures twice cost I/O, no
    figures at all cost the forecast.
    """
    if not network or mode == "always":
        return True
    if mode == "never":
        return False
    if not replicas or replica_id not in replicas:
        return True
    return replica_id == min(replicas)
