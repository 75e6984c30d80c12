"""Reclaimable space against Debian's docker-registry (Distribution 2.8): its own garbage-collect is the oracle."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.garbage import Estimator, Reclaim
from tests.registry import registry  # noqa: F401  (fixture)
from tests.support import run_exporter

ELIGIBLE = re.compile(r"^blob eligible for deletion: (\S+)$", re.M)


def dry_run(registry, delete_untagged=False) -> set[str]:
    """The blobs `garbage-collect --dry-run` lists."""
    return set(ELIGIBLE.findall(registry.garbage_collect_dry_run(delete_untagged)))


def total(digests, sizes) -> Reclaim:
    return Reclaim(len(digests), sum(sizes[d] for d in digests))


def blob_sizes(v2: Path) -> dict[str, int]:
    return {f"sha256:{data.parent.name}": data.stat().st_size for data in (v2 / "blobs/sha256").glob("*/*/data")}


def brute_force_owners(v2: Path) -> dict[str, tuple[int, int]]:
    """repository -> (bytes it references, bytes no other repository references), straight from the files."""
    sizes, used = blob_sizes(v2), {}
    for layers in (v2 / "repositories").rglob("_layers"):
        repo = layers.parent.relative_to(v2 / "repositories").as_posix()
        used[repo] = set()
        for link in (layers.parent / "_manifests/revisions").glob("sha256/*/link"):
            d = link.read_text()
            if d not in sizes:
                continue
            doc = json.loads((v2 / "blobs/sha256" / d[7:9] / d[7:] / "data").read_bytes())
            used[repo] |= {d, *(e["digest"] for e in [doc.get("config") or {}] + doc.get("layers", [])
                                 + doc.get("manifests", []) if "digest" in e)}
    return {repo: (sum(sizes.get(d, 0) for d in ds),
                   sum(sizes.get(d, 0) for d in ds if not any(d in o for r, o in used.items() if r != repo)))
            for repo, ds in used.items()}


def check(registry, v2, estimator, index_children_refs=frozenset()):
    """Both modes equal 2.8's dry runs, except what 2.8 frees below a tagged index; owners equal brute force."""
    estimate = estimator.estimate()
    sizes = blob_sizes(v2)
    assert estimate.unreferenced == total(dry_run(registry), sizes)
    untagged_28 = dry_run(registry, delete_untagged=True)
    assert estimate.untagged_distribution28 == total(untagged_28, sizes)
    # the one difference: layers and configs of a tagged index's children that nothing else keeps
    assert estimate.untagged == total(untagged_28 - index_children_refs, sizes)
    assert {o.repository: (o.bytes, o.unique_bytes) for o in estimate.repositories} == brute_force_owners(v2)
    assert estimate.errors == 0
    return estimate


def test_reclaimable_equals_garbage_collect_step_by_step(registry):
    v2 = registry.storage / "docker/registry/v2"
    estimator = Estimator(v2)
    shared = os.urandom(3000)

    # schema 2 images sharing a layer across repositories, an OCI image, an OCI index of two platforms
    registry.push_image("team/app", "v1", [1000, 2000])
    registry.push_blob("team/other", shared)
    other, _ = registry.push_oci_image("team/other", "latest", [shared, os.urandom(500)])
    registry.push_blob("team/app", shared)
    registry.push_oci_image("oci/img", "1.0", [os.urandom(700)])
    amd, amd_blobs = registry.push_oci_image("multi", None, [shared, os.urandom(800)], "amd64")
    arm, arm_blobs = registry.push_oci_image("multi", None, [os.urandom(900)], "arm64")
    registry.push_oci_index("multi", "latest", {"amd64": amd, "arm64": arm})
    children_refs = {d for d in (*amd_blobs, *arm_blobs) if d not in (amd, arm)}
    first = check(registry, v2, estimator, children_refs)
    assert first.unreferenced == first.untagged == Reclaim(0, 0)
    assert first.untagged_distribution28.blobs == 4  # the arm64 layer, the amd64 layer not shared, both configs

    # re-tag: v1 names a new manifest, the old one is untagged
    registry.push_image("team/app", "v1", [1500])
    check(registry, v2, estimator, children_refs)

    # delete a manifest through the API
    registry.delete_manifest("team/other", other)
    check(registry, v2, estimator, children_refs)

    # delete a repository's directory
    shutil.rmtree(v2 / "repositories/oci/img")
    before_gc = check(registry, v2, estimator, children_refs)
    assert before_gc.unreferenced.blobs > 0

    registry.garbage_collect()
    after = check(registry, v2, estimator, children_refs)
    assert after.unreferenced == Reclaim(0, 0)
    assert after.blobs == before_gc.blobs - before_gc.unreferenced.blobs

    # 2.8's --delete-untagged: frees what we count, plus the index children's layers and configs
    registry.garbage_collect_untagged()
    final = check(registry, v2, estimator)
    assert final.unreferenced == final.untagged == Reclaim(0, 0)
    assert final.blobs == after.blobs - after.untagged_distribution28.blobs


def test_a_damaged_manifest_is_counted_and_stops_distribution_28(registry):
    v2 = registry.storage / "docker/registry/v2"
    d, blobs = registry.push_image("a", "t", [100, 200])
    data = registry.blob_file(d)
    data.write_bytes(data.read_bytes()[:40])
    estimate = Estimator(v2).estimate()
    assert estimate.errors == 1 and estimate.lower_bound
    assert estimate.unreferenced.blobs == len(blobs) - 1  # all but the damaged manifest's own blob
    done = subprocess.run([registry.binary, "garbage-collect", "--dry-run", str(registry.config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "failed to mark" in done.stdout + done.stderr


def published(registry, *extra: str) -> dict[tuple, float]:
    """The garbage collector's series from the real exporter's `metrics` command on the registry's store."""
    others = [f"--no-collector.{n}" for n in ("memory", "cpu", "filesystem", "diskio", "storage", "pagecache",
                                             "traffic", "docker", "dtr_api", "workload")]
    done = run_exporter("metrics", "--storage.path", str(registry.storage), *others, *extra, timeout=120)
    assert done.returncode == 0, done.stderr
    return {(s.name, s.labels.get("mode") or s.labels.get("repository")): s.value
            for f in text_string_to_metric_families(done.stdout) for s in f.samples
            if s.name.startswith(("dtr_storage_reclaimable", "dtr_repository_", "dtr_storage_garbage"))}


def test_the_exporter_publishes_what_garbage_collect_would_delete(registry):
    v2 = registry.storage / "docker/registry/v2"
    kept, _ = registry.push_image("team/app", "v1", [1000, 2000])
    old, _ = registry.push_image("team/app", "v0", [700])
    registry.push_image("team/app", "v1", [1500])  # re-tag: the first v1 is untagged now
    registry.delete_manifest("team/app", old)  # unreferenced: v0's manifest, config and layer
    registry.push_image("team/web", "latest", [3000])
    got = published(registry)
    sizes = blob_sizes(v2)
    for mode, untagged in (("unreferenced", False), ("untagged", True)):
        expected = total(dry_run(registry, delete_untagged=untagged), sizes)
        assert expected.blobs > 0
        assert (got[("dtr_storage_reclaimable_blobs", mode)], got[("dtr_storage_reclaimable_bytes", mode)]) == \
            (expected.blobs, expected.bytes)
    owners = brute_force_owners(v2)
    assert {repo: (got[("dtr_repository_bytes", repo)], got[("dtr_repository_unique_bytes", repo)])
            for repo in owners} == owners
    assert got[("dtr_storage_reclaimable_lower_bound", None)] == 0

    # the top 1 and the rest as (other)
    top = published(registry, "--garbage.top-repositories", "1")
    assert {k[1] for k in top if k[0] == "dtr_repository_bytes"} == {"team/app", "(other)"}

    # after the real collection, nothing is left to reclaim in unreferenced mode
    registry.garbage_collect()
    after = published(registry)
    assert after[("dtr_storage_reclaimable_blobs", "unreferenced")] == 0
    assert kept in {f"sha256:{d.parent.name}" for d in (v2 / "blobs/sha256").glob("*/*/data")}
