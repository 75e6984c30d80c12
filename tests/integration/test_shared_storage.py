"""Replicas sharing one store report one {storage} label, and storage.scan_shared picks who walks it.

Live: a real registry's store, bind-mounted at two paths (as two replicas mount one export), read by
two real exporter processes. NFS itself cannot be served on this machine's loopback, so the NFS case
runs the storage collector in-process over a mount table that declares the store's mounts nfs4.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from exporter.collectors import Context, Found
from exporter.collectors.storage import StorageCollector
from exporter.config import Config
from tests.dtr_node import series
from tests.registry import Registry
from tests.support import run_exporter


@pytest.fixture
def shared_store():
    """A registry store with two images, bind-mounted at two replica paths; unmounted afterwards."""
    base = Path(tempfile.mkdtemp(prefix="dtr-shared-", dir="/var/tmp"))
    mounted = []
    try:
        with Registry(base / "registry") as registry:
            _, first = registry.push_image("team/app", "1", [4096])
            _, second = registry.push_image("team/db", "1", [2048, 1024])
        for replica in ("replica-a", "replica-b"):
            target = base / replica
            target.mkdir()
            subprocess.run(["mount", "--bind", str(registry.storage), str(target)], check=True)
            mounted.append(target)
        yield mounted, len(first) + len(second)
    finally:
        for target in mounted:
            subprocess.run(["umount", str(target)], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_two_exporters_on_bind_mounts_of_one_store_report_one_storage_label(shared_store, tmp_path):
    paths, blobs = shared_store
    seen = []
    for i, path in enumerate(paths):
        done = run_exporter("metrics", "--storage.path", str(path), "--collector.storage", "--no-collector.docker",
                            "--storage.state-dir", str(tmp_path / f"state{i}"))
        assert done.returncode == 0, done.stderr
        [(labels, count)] = series(done.stdout, "dtr_storage_blobs").items()
        assert count == blobs
        seen.append(dict(labels)["storage"])
    assert seen[0] == seen[1]
    assert not seen[0].endswith(("replica-a", "replica-b"))  # names the store, not the replica's view of it


def nfs_procfs(tmp_path: Path, mountpoints: list[Path]) -> Path:
    """A procfs whose mount table says each path is the NFS export server:/export/dtr."""
    procfs = tmp_path / "proc"
    (procfs / "self").mkdir(parents=True)
    lines = ["1 0 254:0 / / rw,relatime - ext4 /dev/vda rw"]
    for i, mp in enumerate(mountpoints, start=100):
        st = os.stat(mp)
        lines.append(f"{i} 1 {os.major(st.st_dev)}:{os.minor(st.st_dev)} / {mp} rw,relatime shared:{i} - nfs4 "
                     f"nfs.example:/export/dtr rw,vers=4.2")
    (procfs / "self" / "mountinfo").write_text("\n".join(lines) + "\n")
    return procfs


def test_on_nfs_auto_walks_on_the_lowest_replica_only_and_both_name_the_export(shared_store, tmp_path):
    paths, blobs = shared_store
    procfs = nfs_procfs(tmp_path, paths)
    replicas = ("0a0a0a0a0a0a", "0b0b0b0b0b0b")  # as cluster_status lists them
    readings = []
    for path, me in zip(paths, replicas):
        found = Found(storage_path=path, replica_id=me, replicas=replicas)
        readings.append(StorageCollector(Context(procfs=procfs, config=Config())).collect(found))
    walker, idle = readings
    assert walker.storage.rstrip("/") == "nfs:nfs.example:/export/dtr" and walker.blobs == blobs
    assert idle.storage is None and "walked by replica 0a0a0a0a0a0a" in idle.detail

    found = Found(storage_path=paths[1], replica_id=replicas[1], replicas=replicas)
    always = StorageCollector(Context(procfs=procfs, config=Config(scan_shared="always")))
    assert always.collect(found).storage == walker.storage  # the same label from the other replica
