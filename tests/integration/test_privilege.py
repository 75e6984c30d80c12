"""Least privilege: the same exporter as root and as ``nobody`` beside a real registry run by root.

As nobody, /proc/<registry pid>/io is out of reach (it needs the registry's uid
or CAP_SYS_PTRACE) and a root-only subtree of the store cannot be listed: the
pagecache and storage collectors must say so (success 0, the reason on the
status page, the scan's error count), while the host collectors carry on.
This is also the fault suite's "subtree unreadable" case: root reads through
permissions, so only an unprivileged exporter can meet one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from tests.integration.test_faults import names, scrape, success
from tests.integration.web_harness import LoggedExporter
from tests.registry import Registry
from tests.support import require, unavailable, wait_for

HOST_COLLECTORS = ("memory", "cpu", "filesystem", "diskio")


@pytest.fixture(scope="module")
def node():
    """A registry run by root in a directory nobody may traverse, with one root-only prefix directory."""
    if os.geteuid() != 0:
        unavailable("this module runs as root: it starts the registry as root and drops the exporter to nobody")
    base = Path(tempfile.mkdtemp(prefix="dtr-privilege-", dir="/tmp"))
    base.chmod(0o755)
    with Registry(base) as registry:
        registry.push_image("library/app", "v1", [4096, 8192])
        hidden = registry.storage / "docker/registry/v2/blobs/sha256/zz"
        (hidden / ("zz" + "0" * 62)).mkdir(parents=True)
        (hidden / ("zz" + "0" * 62) / "data").write_bytes(b"root only")
        hidden.chmod(0o700)
        yield registry, base
    shutil.rmtree(base, ignore_errors=True)


def start(node, tmp_path, as_nobody: bool) -> LoggedExporter:
    registry, base = node
    config = base / "exporter.yml"
    config.write_text("collectors:\n  storage: {interval: 1s}\n  pagecache: {interval: 1s}\n")
    config.chmod(0o644)
    prefix = (require("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
              "--bounding-set=-all", "--no-new-privs") if as_nobody else ()
    env = {"PYTHONDONTWRITEBYTECODE": "1", "HOME": str(base)}
    return LoggedExporter("--config.file", str(config), "--storage.path", str(registry.storage),
                          "--no-collector.traffic", log_path=tmp_path / f"log-{as_nobody}", prefix=prefix, env=env)


def settled(exporter) -> dict:
    return wait_for(lambda: (m := scrape(exporter.url)) and all(
        success(m, c) is not None for c in (*HOST_COLLECTORS, "storage", "pagecache")) and m, timeout=20,
        what="every collector reported")


def test_root_reads_everything(node, tmp_path):
    with start(node, tmp_path, as_nobody=False) as exporter:
        metrics = wait_for(lambda: (m := settled(exporter)) and success(m, "pagecache") == 1
                           and success(m, "storage") == 1 and m, timeout=20, what="root sees all")
        for name in HOST_COLLECTORS:
            assert success(metrics, name) == 1
        assert metrics[("dtr_storage_blobs", (("storage", _storage_label(metrics)),))] >= 4


def test_nobody_degrades_visibly_not_silently(node, tmp_path):
    with start(node, tmp_path, as_nobody=True) as exporter:
        assert _uid(exporter.proc.pid) == 65534
        metrics = wait_for(lambda: (m := settled(exporter)) and success(m, "pagecache") == 0
                           and success(m, "storage") == 0 and m, timeout=20, what="nobody degraded")
        for name in HOST_COLLECTORS:  # /proc/meminfo, /proc/stat, statvfs, diskstats need no privilege
            assert success(metrics, name) == 1, name
        storage = _storage_label(metrics)
        assert metrics[("dtr_storage_scan_errors", (("storage", storage),))] >= 1
        assert "dtr_storage_blobs" in names(metrics), "what could be read is still reported"
        page = requests.get(exporter.url + "/", timeout=5).text
        assert "CAP_SYS_PTRACE" in page and "unreadable entries" in page
        assert "permission denied" in exporter.log()


def _storage_label(metrics: dict) -> str:
    return next(dict(labels)["storage"] for name, labels in metrics if name == "dtr_storage_blobs")


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")
