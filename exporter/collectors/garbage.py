"""What garbage collection would free in the image store, and which repositories use it.

Emits, each {storage}: dtr_storage_reclaimable_blobs{mode}, dtr_storage_reclaimable_bytes{mode}
(mode "unreferenced": what `registry garbage-collect` deletes; "untagged": what
`garbage-collect --delete-untagged` deletes), dtr_storage_reclaimable_lower_bound (1 when a
manifest or link could not be read, so the figures may be short), dtr_storage_garbage_errors,
dtr_storage_manifests; dtr_repository_bytes{repository} and dtr_repository_unique_bytes{repository}
for the top ``garbage.top_repositories`` repositories by bytes, the rest summed as
repository="(other)".

The counting is exporter.garbage's (docs/garbage.md): the mark state is kept between passes, so a
pass reads only links, manifests and blobs that changed. The store comes
with every run (``found``), as for the storage collector, and a shared network store is left to
the replica that walks it (storage.scan_shared). What the estimate keeps per blob and manifest is
in a SQLite cache file (in storage.state_dir when set, else a private temporary file). Each run also
keeps the top repositories' bytes in a small history (in storage.state_dir when set), for their
growth over the last day.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from .. import dtr, mounts
from ..families import gauge
from ..garbage import MODES, Estimator, Reclaim
from ..scan import resolve_v2
from ..storage_id import storage_id
from . import NOTHING, Found, Spec

# incremental after the first pass (bench/garbage.py, docs/performance.md): cheap at 5 min
SPEC = Spec(True, 300, 3600, "manifests, tags and blob sizes of the store under --storage.path (background walk)",
            follows_store=True)
DAY = 86400.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepositoryUse:
    repository: str  # exporter.garbage.OTHER sums the repositories below the top K
    bytes: int
    unique_bytes: int
    day_growth_bytes: int | None  # change of bytes over the last day; None until a day of history


@dataclass(frozen=True)
class GarbageReading:
    """``storage`` None: no store estimated (``detail`` says why)."""

    storage: str | None = None
    path: str = ""
    detail: str = ""
    unreferenced: Reclaim = Reclaim()
    untagged: Reclaim = Reclaim()
    top_repositories: tuple[RepositoryUse, ...] = ()
    manifests: int = 0
    garbage_errors: int = 0  # manifests, links or directories Distribution's collector would stop on

    @property
    def lower_bound(self) -> bool:
        return self.garbage_errors > 0


class GarbageCollector:
    name = "garbage"
    keep_last_reading = True  # an overrun pass keeps the last estimate, as the storage walk does

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        self._key: tuple[Path, str] | None = None
        self._estimator: Estimator | None = None
        self._history: OwnerHistory | None = None

    def collect(self, found: Found = NOTHING) -> GarbageReading:
        root = found.storage_path
        if root is None:
            return GarbageReading(detail="no storage path: set --storage.path, or let the exporter reach the "
                                         "Docker socket to find the registry's volume")
        v2 = resolve_v2(Path(root))
        if v2 is None:
            raise FileNotFoundError(f"{root}: no docker/registry/v2 (nor blobs/, repositories/) here")
        sid = storage_id(Path(root), self.ctx.procfs, self.ctx.rootfs)
        where = mounts.locate(Path(root), mounts.mount_table(self.ctx.procfs), self.ctx.rootfs)
        if not dtr.scan_shared_store(self.config.scan_shared, where.network, found.replica_id, found.replicas):
            return GarbageReading(path=str(root), detail=f"shared store on {where.fstype} is estimated by another "
                                                         f"replica (storage.scan_shared={self.config.scan_shared})")
        if self._key != (v2, sid):  # a new store: start afresh
            self._key = (v2, sid)
            if self._estimator is not None:
                self._estimator.close()
            self._estimator = Estimator(v2, self.config.top_repositories, state_dir=self.config.state_dir)
            self._history = OwnerHistory(self.config.state_dir, sid)
        estimate = self._estimator.estimate()
        now = time.time()
        self._history.add(now, {o.repository: o.bytes for o in estimate.repositories})
        owners = tuple(RepositoryUse(o.repository, o.bytes, o.unique_bytes, self._history.day_growth(now, o.repository))
                       for o in estimate.repositories)
        return GarbageReading(storage=sid, path=str(root), unreferenced=estimate.unreferenced,
                              untagged=estimate.untagged, top_repositories=owners, manifests=estimate.manifests,
                              garbage_errors=estimate.errors)


COLLECTOR = GarbageCollector


class OwnerHistory:
    """The top repositories' bytes, one sample an hour over the last day and a bit, in memory and in
    ``storage-owners-<id>.json`` under the state directory. An unreadable or unwritable file is logged
    and the history carries on in memory."""

    KEEP = DAY + 2 * 3600
    GAP = 3600.0  # one sample an hour is enough to say what a day ago was

    def __init__(self, state_dir: str | Path | None, sid: str):
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.path = None
        if state_dir:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", sid).strip("_")[:120] or "storage"
            self.path = Path(state_dir) / f"storage-owners-{safe}.json"
            self.samples = self._load()

    def _load(self) -> list[tuple[float, dict[str, int]]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return sorted(((float(t), {str(k): int(v) for k, v in owners.items()}) for t, owners in raw["samples"]),
                          key=lambda s: s[0])
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            log.warning("ignoring unreadable repository history", extra={"path": str(self.path), "err": str(err)})
            return []

    def add(self, now: float, owners: dict[str, int]) -> None:
        kept = [s for s in self.samples if s[0] <= now and now - s[0] <= self.KEEP]
        if len(kept) >= 2 and now - kept[-2][0] < self.GAP:
            kept[-1] = (now, owners)  # the newest sample follows the store until an hour has passed
        else:
            kept.append((now, owners))
        self.samples = kept
        self._save()

    def day_growth(self, now: float, repository: str) -> int | None:
        """Bytes now minus bytes at the newest sample at least a day old; None without one."""
        old = [owners for t, owners in self.samples if now - t >= DAY]
        if not old or repository not in old[-1]:
            return None
        return self.samples[-1][1].get(repository, 0) - old[-1][repository]

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".owners-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"samples": self.samples}, f)
            os.replace(tmp, self.path)
        except OSError as err:
            log.warning("cannot save repository history", extra={"path": str(self.path), "err": str(err)})
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)


def families(r: GarbageReading) -> Iterator[Metric]:
    """Every series carries ``{storage}``, the stable id of exporter.storage_id, as the storage collector's."""
    if r.storage is None:
        return
    blobs = GaugeMetricFamily("dtr_storage_reclaimable_blobs", "Blobs garbage collection would delete: "
                              "unreferenced (registry garbage-collect) or untagged (--delete-untagged).",
                              labels=["storage", "mode"])
    size = GaugeMetricFamily("dtr_storage_reclaimable_bytes", "Bytes garbage collection would free, by mode "
                             "as dtr_storage_reclaimable_blobs.", labels=["storage", "mode"])
    for mode in MODES:
        reclaim = getattr(r, mode)
        blobs.add_metric([r.storage, mode], reclaim.blobs)
        size.add_metric([r.storage, mode], reclaim.bytes)
    yield from (blobs, size)
    yield gauge("dtr_storage_reclaimable_lower_bound", "1 when something could not be read: the reclaimable "
                "figures may be short, and Distribution's collector stops on it.", int(r.lower_bound),
                {"storage": r.storage})
    yield gauge("dtr_storage_garbage_errors", "Manifests, links or directories the last estimate could not read.",
                r.garbage_errors, {"storage": r.storage})
    yield gauge("dtr_storage_manifests", "Manifests (revisions) linked in the store's repositories.", r.manifests,
                {"storage": r.storage})
    owned = GaugeMetricFamily("dtr_repository_bytes", "Bytes of the blobs a repository's manifests use; shared "
                              "blobs count in each. Top repositories, the rest as (other).",
                              labels=["storage", "repository"])
    unique = GaugeMetricFamily("dtr_repository_unique_bytes", "Bytes of the blobs only this repository uses.",
                               labels=["storage", "repository"])
    for o in r.top_repositories:
        owned.add_metric([r.storage, o.repository], o.bytes)
        unique.add_metric([r.storage, o.repository], o.unique_bytes)
    yield from (owned, unique)
