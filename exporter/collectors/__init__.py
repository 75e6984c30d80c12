"""Collectors: each reads one source into a plain reading. A collector is one module here.

A module in this package is a collector by being here (found with pkgutil), and holds all of it:
- a docstring listing the metrics it emits;
- ``SPEC``, a ``Spec``: its defaults (on/off, interval, timeout) and what it reads (the docs row);
- its reading: frozen dataclasses, no Prometheus types;
- ``COLLECTOR``: a class built from the ``Context`` whose ``collect(found)`` returns a reading;
- ``families(reading)``: the metric families that reading becomes.

A collector imports no other collector, and no web, report or CLI module. Heavy libraries
(requests) are imported inside the functions that use them: importing every module here is
cheap, so a node that needs no HTTP client library never loads one.

What one collector learns that others follow travels as ``Found``, an immutable value: the
discoverers (``Spec.discovers``) put theirs in their reading's ``found``; the sampler merges
them and hands the result to every ``collect(found)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable


@dataclass(frozen=True)
class Spec:
    """A collector's defaults and the row that documents it."""

    enabled: bool
    interval: float  # seconds
    timeout: float  # seconds
    reads: str  # what it reads, for --help and the docs
    # > 0: a discoverer, run before every other collector at start and in `check`, lower ranks
    # first; its reading carries ``found``, and a lower rank's finding wins a field both know
    discovers: int = 0
    follows_store: bool = False  # reads the store Found names: run again at once when it changes


@dataclass(frozen=True)
class Found:
    """What discovery has learned that other collectors follow. None or () means not known."""

    storage_path: Path | None = None  # the image store, as seen from here
    storage_driver: str | None = None
    replica_id: str | None = None  # this node's DTR replica
    replicas: tuple[str, ...] = ()  # every replica the DTR API knows
    dtr_processes: tuple = ()  # of exporter.dtr.Process: the running DTR containers' pids and CPU limits
    registry_log: Path | None = None  # the registry container's json-file log, as seen from here

    def store(self) -> tuple:
        """What the store-facing collectors follow: where the store is and who walks a shared one."""
        return self.storage_path, self.replica_id, self.replicas

    def over(self, *others: Found) -> Found:
        """Each field from the first of self, *others that knows it."""
        def first(name: str):
            return next((v for f in (self, *others) if (v := getattr(f, name))), getattr(self, name))
        return Found(**{f.name: first(f.name) for f in fields(self)})


NOTHING = Found()


class PartialReading(Exception):
    """Raised with what could still be read when part of a source failed.

    The sampler keeps ``reading`` and marks the collector failed, so the
    success metric tells of the fault while the rest of the data stands.
    """

    def __init__(self, reading: Any, error: str):
        super().__init__(error)
        self.reading = reading


@dataclass
class Context:
    """Everything a collector may read: host paths, endpoints and settings (not what discovery finds)."""

    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    rootfs: Path = Path("/")
    docker_data_root: Path = Path("/var/lib/docker")
    config: Any = None  # exporter.config.Config; collectors read their settings from it

    def __post_init__(self) -> None:
        if self.config is None:
            from ..config import Config  # here: exporter.config imports this package for DEFAULTS
            self.config = Config()

    def host_path(self, path: str | Path) -> Path:
        """A host path as seen from here: ``/var/lib/docker`` under ``--path.rootfs``."""
        path = Path(path)
        if path.is_absolute():
            return self.rootfs / path.relative_to("/")
        return path


def _modules() -> dict[str, ModuleType]:
    return {m.name: importlib.import_module(f"{__name__}.{m.name}")
            for m in pkgutil.iter_modules(__path__) if not m.ispkg}


MODULES = _modules()
SPECS: dict[str, Spec] = {name: module.SPEC for name, module in MODULES.items()}
# name: (enabled by default, interval seconds, timeout seconds, what it reads)
DEFAULTS: dict[str, tuple[bool, float, float, str]] = {
    name: (s.enabled, s.interval, s.timeout, s.reads) for name, s in SPECS.items()}
DISCOVERERS = tuple(sorted((n for n, s in SPECS.items() if s.discovers), key=lambda n: SPECS[n].discovers))
STORE_FACING = frozenset(n for n, s in SPECS.items() if s.follows_store)


def create(name: str, ctx: Context):
    """An instance of collector ``name``."""
    return MODULES[name].COLLECTOR(ctx)


def families(name: str, reading: Any) -> Iterable:
    """The metric families of collector ``name``'s reading."""
    return MODULES[name].families(reading)
