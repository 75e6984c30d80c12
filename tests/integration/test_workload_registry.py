"""What this node needs, measured by the real exporter on a real Distribution registry (Debian docker-registry).

The registry logs every request; the exporter's `check` follows that log, finds the registry by pid,
and judges memory_hot_set: with the registry in a memory cgroup whose limit is below the hot set H
it fails, with one above H it passes; the recommended memory covers H and the registry's own memory.
The workload collector, in process on the same registry, shows the file hit ratio falling below
its threshold when the cgroup cannot hold H. A log that cannot be read falls back and says so.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from exporter import config as cfg
from exporter.collectors import Context, Found
from exporter.collectors.workload import WorkloadCollector
from tests.registry import LoggingRegistry, memory_cgroup
from tests.support import run_exporter

MIB = 2**20
SIZES = [24 * MIB] * 8  # 192 MiB pushed
HOT = (0, 2, 3, 5, 6)  # H: 120 MiB pulled
H = sum(SIZES[i] for i in HOT)
ONLY = ["--no-collector.docker", "--no-collector.dtr_api", "--no-collector.storage", "--no-collector.pagecache",
        "--no-collector.traffic", "--no-collector.diskio"]


@pytest.fixture
def disk_dir():
    path = Path(tempfile.mkdtemp(prefix="dtr-workload-", dir="/var/tmp"))  # disk-backed, unlike a tmpfs /tmp
    yield path
    shutil.rmtree(path, ignore_errors=True)


def push_and_pull(registry: LoggingRegistry, pulls: int) -> list[str]:
    digests = [registry.push_blob("team/app", os.urandom(size)) for size in SIZES]
    for _ in range(pulls):
        for i in HOT:
            registry.pull_blob("team/app", digests[i])
    return digests


def check(registry: LoggingRegistry, workdir: Path, log: Path) -> dict:
    config = workdir / "exporter.yml"
    config.write_text(f"registry:\n  pids: [{registry.proc.pid}]\n  process_names: []\n")
    done = run_exporter("check", "--output", "json", "--config.file", str(config), "--storage.path",
                        str(registry.storage), "--registry.log-path", str(log), *ONLY)
    assert done.returncode in (0, 1, 3) and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def verdict(data: dict, severity: str) -> dict:
    return next(c for c in data["checks"] if c["check"] == "memory_hot_set" and c["severity"] == severity)


def rss(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize("limit, state", [(H // 2, "fail"), (H + 256 * MIB, "ok")])
def test_memory_hot_set_against_a_registry_in_a_memory_cgroup(disk_dir, limit, state):
    with memory_cgroup(limit) as group, LoggingRegistry(disk_dir, cgroup=group) as registry:
        push_and_pull(registry, pulls=2)
        data = check(registry, disk_dir, registry.log_path)
        own = rss(registry.proc.pid)
    warning, critical = verdict(data, "warning"), verdict(data, "critical")
    # the thresholds in force are the hot sets: 1 h and 24 h are both H here, within 10 %
    for v in (warning, critical):
        assert abs(v["threshold"] - H) <= 0.1 * H, v
        assert v["state"] == state, v
        assert v["observed"] <= limit  # the cgroup's room caps the host's figure
    assert "(log, lower_bound)" in warning["detail"] and "1h hot set" in warning["detail"]
    needs = data["needs"]["memory"]
    assert needs["recommended"] >= H + own
    assert "24 h hot set" in needs["reasoning"] and needs["kb_minimum"] == 4 * 2**30
    if state == "fail":  # a failing check fails the whole verdict (the others depend on this busy host)
        assert data["ok"] is False


def test_the_file_hit_ratio_falls_when_the_cgroup_cannot_hold_the_hot_set(disk_dir):
    with memory_cgroup(H // 2) as group, LoggingRegistry(disk_dir, cgroup=group) as registry:
        digests = push_and_pull(registry, pulls=0)
        ctx = Context(config=cfg.Config(registry_pids=[registry.proc.pid], registry_process_names=[],
                                        registry_log_path=str(registry.log_path)))
        collector = WorkloadCollector(ctx)
        found = Found(storage_path=registry.storage)
        collector.collect(found)
        for _ in range(3):  # cycling through more than the cgroup can cache: each pull evicts the next
            for i in HOT:
                registry.pull_blob("team/app", digests[i])
        reading = collector.collect(found)
    assert reading.hot.method == "log" and abs(reading.hot.windows["1h"].bytes - H) <= 0.1 * H
    assert reading.memory_room_bytes is not None and reading.memory_room_bytes < H
    assert reading.file_hit_ratio is not None and reading.file_hit_ratio < 0.9  # page_cache_hit_ratio's threshold


def test_a_log_that_cannot_be_read_falls_back_and_the_check_says_so(disk_dir):
    with LoggingRegistry(disk_dir) as registry:
        push_and_pull(registry, pulls=1)
        data = check(registry, disk_dir, disk_dir)  # a directory: read() fails
    detail = verdict(data, "warning")["detail"]
    assert f"registry log {disk_dir}: Is a directory" in detail
    assert "(atime," in detail or "(none," in detail
