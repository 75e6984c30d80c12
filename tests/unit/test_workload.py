"""What this node needs: the workload collector on a recorded-style tree, the memory_hot_set check,
the recommended sizes and how check, the status page and /metrics show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter import config as cfg
from exporter import hotset, recommend, report, sizing, statuspage
from exporter.collectors import Context, Found
from exporter.collectors.cpu import CpuReading
from exporter.collectors.filesystem import Filesystem, FilesystemReading
from exporter.collectors.memory import MemoryReading
from exporter.collectors.storage import StorageReading
from exporter.collectors.workload import WorkloadCollector, WorkloadReading, accuracy_of, families
from exporter.exposition import to_text
from exporter.sampler import Snapshot, Status

GiB, MiB = 2**30, 2**20
OK, FAIL, UNKNOWN, NA = sizing.OK, sizing.FAIL, sizing.UNKNOWN, sizing.NOT_APPLICABLE


def hot(h1: int | None, h24: int, method: str = hotset.LOG) -> hotset.HotSet:
    windows = {"24h": hotset.Window(h24, 7)}
    if h1 is not None:
        windows["1h"] = hotset.Window(h1, 3)
    return hotset.HotSet(method, "", windows, 86400.0)


def workload(available: int, h1: int | None = 2 * GiB, h24: int = 6 * GiB, **more) -> WorkloadReading:
    return WorkloadReading(storage="dev:/dev/vdb:/", hot=hot(h1, h24), accuracy="exact",
                           page_cache_available_bytes=available, process_memory_bytes=more.pop("own", GiB), **more)


def verdicts(readings: dict, thresholds: dict | None = None) -> dict:
    thresholds = thresholds or {"memory_hot_set": sizing.CHECKS["memory_hot_set"].defaults}
    return {(v.check, v.severity): v for v in sizing.evaluate(readings, thresholds)}


# --- the memory_hot_set check ----------------------------------------------------------------

@pytest.mark.parametrize("available, warning, critical", [
    (8 * GiB, OK, OK),  # holds the 24 h hot set
    (4 * GiB, FAIL, OK),  # holds the 1 h set, not the 24 h one
    (1 * GiB, FAIL, FAIL),  # not even the 1 h set
])
def test_memory_hot_set_compares_the_cache_with_the_24h_set_for_warning_and_the_1h_set_for_critical(
        available, warning, critical):
    got = verdicts({"workload": workload(available)})
    assert (got["memory_hot_set", "warning"].state, got["memory_hot_set", "critical"].state) == (warning, critical)
    # the thresholds in force are bytes, so dtr_sizing_observed < dtr_sizing_threshold is the alert
    assert got["memory_hot_set", "warning"].threshold == 6 * GiB
    assert got["memory_hot_set", "critical"].threshold == 2 * GiB
    assert got["memory_hot_set", "warning"].observed == available


def test_memory_hot_set_thresholds_are_configured_as_shares_of_the_hot_set(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("thresholds:\n  memory_hot_set: {warning: 50%, critical: 1.0}\n")
    config = cfg.load_file(path)
    got = verdicts({"workload": workload(4 * GiB)}, config.thresholds_in_force())
    assert got["memory_hot_set", "warning"].threshold == 3 * GiB and got["memory_hot_set", "warning"].state == OK
    path.write_text("thresholds:\n  memory_hot_set: {warning: 8GiB}\n")
    with pytest.raises(cfg.ConfigError, match=r"thresholds.memory_hot_set.warning: '8GiB' is not a ratio"):
        cfg.load_file(path)


def test_memory_hot_set_without_a_1h_window_judges_the_warning_only():
    got = verdicts({"workload": workload(4 * GiB, h1=None)})  # atime under relatime: 24 h only
    assert got["memory_hot_set", "warning"].state == FAIL
    assert (got["memory_hot_set", "critical"].state, got["memory_hot_set", "critical"].threshold) == (UNKNOWN, None)
    text = to_text(snapshot({"workload": workload(4 * GiB, h1=None)}),
                   sizing.evaluate({"workload": workload(4 * GiB, h1=None)}, cfg.Config().thresholds_in_force()))
    assert b'dtr_sizing_threshold{check="memory_hot_set",severity="warning"} 6.442450944e+09' in text
    assert b'dtr_sizing_threshold{check="memory_hot_set",severity="critical"}' not in text


def test_memory_hot_set_is_unknown_without_a_reading_and_not_applicable_with_s3():
    assert verdicts({})["memory_hot_set", "warning"].state == UNKNOWN

    class Docker:
        storage_driver = "s3"
    assert verdicts({"workload": workload(GiB), "docker": Docker()})["memory_hot_set", "warning"].state == NA


def test_the_hit_ratio_check_prefers_the_file_ratio_of_the_request_log():
    class Pagecache:
        hit_ratio = 0.97  # rchar: a push-heavy registry looks healthy
    thresholds = {"page_cache_hit_ratio": {"warning": 0.9}}
    only_rchar = verdicts({"pagecache": Pagecache()}, thresholds)["page_cache_hit_ratio", "warning"]
    assert (only_rchar.state, only_rchar.detail) == (OK, "registry processes' rchar (counts pushes as hits)")
    both = verdicts({"pagecache": Pagecache(), "workload": workload(GiB, file_hit_ratio=0.3)},
                    thresholds)["page_cache_hit_ratio", "warning"]
    assert (both.state, both.observed) == (FAIL, 0.3) and "request log" in both.detail


# --- recommended sizes ---------------------------------------------------------------------------

def full_readings() -> dict:
    storage = Filesystem("storage", "/srv", "/dev/vdb", "ext4", 500 * 10**9, 300 * 10**9, 10**6, 9 * 10**5, False)
    return {
        "memory": MemoryReading(8 * GiB, 4 * GiB, 2 * GiB, 0, 0, 0),
        "filesystem": FilesystemReading((storage,)),
        "storage": StorageReading("dev:/dev/vdb:/", growth_bytes_per_second=10**9 / 86400),  # 1 GB a day
        "cpu": CpuReading(host_cpus=4, usable_cpus=4, seconds_by_mode={}, busy_ratio=0.5, busy_window_seconds=300.0),
        "workload": workload(4 * GiB, own=GiB, h24=6 * GiB),
    }


def test_needs_apply_the_formulas_to_the_readings():
    needs = {n.resource: n for n in sizing.needs(full_readings())}
    assert needs["memory"].value == recommend.recommended_memory_bytes(GiB, 6 * GiB)
    assert needs["memory"].value == GiB + 6 * GiB + GiB + round(0.2 * 7 * GiB)  # P + H24 + 1 GiB + 20 %
    assert needs["memory"].installed == 8 * GiB
    assert needs["disk"].value == 200 * 10**9 + 90 * 10**9 + 30 * 10**9
    assert needs["cpu"].value == 3  # 2 busy cores / 0.8 = 2.5
    assert "DTR's processes 1.0 GiB + 24 h hot set 6.0 GiB (log, exact)" in needs["memory"].reasoning
    assert "in use on /srv" in needs["disk"].reasoning and "over 90d" in needs["disk"].reasoning
    assert "busy 2.00 of 4 usable cores" in needs["cpu"].reasoning


def test_needs_say_which_input_is_missing():
    needs = {n.resource: n for n in sizing.needs({})}
    assert all(n.value is None for n in needs.values())
    assert needs["memory"].reasoning == "unknown: DTR's process memory and the 24 h hot set (no reading) not measured"
    assert needs["disk"].reasoning == "unknown: no storage filesystem"


def snapshot(readings: dict) -> Snapshot:
    return Snapshot(1, {name: Status(r, True) for name, r in readings.items()}, True)


def test_check_json_table_status_page_and_metrics_carry_the_needs():
    readings = full_readings()
    snap = snapshot(readings)
    found = sizing.evaluate(readings, cfg.Config().thresholds_in_force())
    data = json.loads(report.as_json(snap, found))
    assert data["needs"]["memory"]["recommended"] == recommend.recommended_memory_bytes(GiB, 6 * GiB)
    assert data["needs"]["cpu"] == {"unit": "cores", "recommended": 3, "installed": 4, "kb_minimum": 2,
                                    "reasoning": data["needs"]["cpu"]["reasoning"]}
    table = report.as_table(snap, found)
    assert "this node needs, for its own workload:" in table
    assert "  cpu: 3 (installed 4, KB minimum 2): busy 2.00 of 4 usable cores" in table
    page = statuspage.render(snap, found, "test")
    assert '<tr data-need="memory"><td>memory</td><td>9.4 GiB</td><td>8.0 GiB</td><td>4.0 GiB</td>' in page
    text = to_text(snap, found).decode()
    assert "dtr_sizing_recommended_memory_bytes 1.0093173146e+10" in text
    assert 'dtr_sizing_recommended_disk_bytes{horizon="90d"} 3.2e+11' in text
    assert "dtr_sizing_recommended_cpu_cores 3.0" in text


# --- the collector -------------------------------------------------------------------------------

MEMINFO = """MemTotal:       16777216 kB
MemFree:         1048576 kB
AnonPages:       4194304 kB
Shmem:            524288 kB
SUnreclaim:       262144 kB
KernelStack:       16384 kB
PageTables:        65536 kB
"""


def host_tree(tmp_path: Path, log_lines: list[str], limit: str | None = None) -> tuple[Context, Path]:
    """A /proc with one registry process (pid 4242) in a v2 cgroup, a /sys, and a store with two blobs."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    pid = proc / "4242"
    pid.mkdir(parents=True)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "self").mkdir()
    (proc / "self/mountinfo").write_text(Path("/proc/self/mountinfo").read_text())  # for the storage id
    (pid / "comm").write_text("registry\n")
    (pid / "status").write_text("Name:\tregistry\nRssAnon:\t   51200 kB\nRssFile:\t 1024 kB\n")
    (pid / "io").write_text("rchar: 100\nwchar: 0\nread_bytes: 0\nwrite_bytes: 0\n")
    (pid / "cgroup").write_text("0::/system.slice/registry.service\n")
    group = sys / "fs/cgroup/system.slice/registry.service"
    group.mkdir(parents=True)
    (sys / "fs/cgroup/cgroup.controllers").write_text("memory cpu\n")
    (group / "memory.max").write_text((limit or "max") + "\n")
    (group / "memory.stat").write_text(f"anon {50 * MiB}\nfile 0\n")
    root = tmp_path / "store"
    for digest, size in (("ab" * 32, 3 * MiB), ("cd" * 32, 1 * MiB)):
        blob = root / "docker/registry/v2/blobs/sha256" / digest[:2] / digest / "data"
        blob.parent.mkdir(parents=True)
        with blob.open("wb") as f:
            f.truncate(size)
    log = tmp_path / "registry.log"
    log.write_text("".join(line + "\n" for line in log_lines))
    config = cfg.Config(registry_log_path=str(log))
    return Context(procfs=proc, sysfs=sys, rootfs=Path("/"), config=config), root


def access(digest: str) -> str:
    from datetime import datetime, timezone
    stamp = datetime.now(timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'127.0.0.1 - - [{stamp}] "GET /v2/team/app/blobs/sha256:{digest} HTTP/1.1" 200 {3 * MiB} "" "ua"'


def test_the_collector_reads_the_hot_set_the_cache_available_and_the_processes(tmp_path):
    ctx, root = host_tree(tmp_path, [access("ab" * 32)], limit=str(1 * GiB))
    reading = WorkloadCollector(ctx).collect(Found(storage_path=root))
    assert reading.hot.method == "log" and reading.hot.windows["1h"] == hotset.Window(3 * MiB, 1)
    assert reading.accuracy == "lower_bound"  # followed for less than 24 h
    assert reading.memory_room_bytes == GiB - 50 * MiB
    host = (16777216 - 4194304 - 524288 - 262144 - 16384 - 65536) * 1024
    assert host > GiB and reading.page_cache_available_bytes == GiB - 50 * MiB  # the cgroup binds
    assert (reading.process_memory_bytes, reading.processes) == (51200 * 1024, 1)
    text = "".join(m.name + str(m.samples) for m in families(reading))
    assert "dtr_storage_hot_bytes" in text and "'window': '1h'" in text and "'accuracy': 'lower_bound'" in text


def test_the_collector_without_a_limit_gives_the_host_figure(tmp_path):
    ctx, root = host_tree(tmp_path, [])
    reading = WorkloadCollector(ctx).collect(Found(storage_path=root))
    assert reading.memory_room_bytes is None
    assert reading.page_cache_available_bytes == (16777216 - 4194304 - 524288 - 262144 - 16384 - 65536) * 1024


def test_the_file_hit_ratio_divides_storage_reads_by_blob_bytes_served(tmp_path, monkeypatch):
    ctx, root = host_tree(tmp_path, [])
    collector = WorkloadCollector(ctx)
    clock = iter(range(1000, 2000, 60))
    monkeypatch.setattr("exporter.collectors.workload.time.monotonic", lambda: next(clock))
    assert collector.collect(Found(storage_path=root)).file_hit_ratio is None  # one sample
    with (tmp_path / "registry.log").open("a") as log:
        log.write("".join(access("ab" * 32) + "\n" for _ in range(4)))  # 12 MiB served
    (ctx.procfs / "4242/io").write_text(f"rchar: 100\nwchar: 0\nread_bytes: {3 * MiB}\nwrite_bytes: 0\n")
    reading = collector.collect(Found(storage_path=root))
    assert reading.file_hit_ratio == pytest.approx(0.75) and reading.file_hit_window_seconds == 60


def test_a_docker_found_log_is_followed_when_none_is_configured(tmp_path):
    ctx, root = host_tree(tmp_path, [access("cd" * 32)])
    wrapped = tmp_path / "container-json.log"
    wrapped.write_text(json.dumps({"log": access("ab" * 32) + "\n", "stream": "stdout"}) + "\n")
    ctx.config.registry_log_path = None
    reading = WorkloadCollector(ctx).collect(Found(storage_path=root, registry_log=wrapped))
    assert reading.hot.windows["1h"] == hotset.Window(3 * MiB, 1)


def test_without_a_store_only_the_cache_and_processes_are_read(tmp_path):
    ctx, _ = host_tree(tmp_path, [])
    reading = WorkloadCollector(ctx).collect(Found())
    assert reading.hot is None and reading.page_cache_available_bytes is not None
    assert not any(m.name.startswith("dtr_storage_hot") for m in families(reading))


def test_atime_read_by_mincore_is_an_upper_bound():
    relatime = hotset.HotSet(hotset.ATIME, "", {"24h": hotset.Window(1, 1)}, 86400.0)
    strict = hotset.HotSet(hotset.ATIME, "", {"24h": hotset.Window(1, 1), "1h": hotset.Window(1, 1)}, 86400.0)
    assert accuracy_of(relatime, False) == "lower_bound" and accuracy_of(strict, False) == "exact"
    assert accuracy_of(strict, True) == "upper_bound"
    assert accuracy_of(hotset.HotSet(hotset.LOG, "", {}, 90000.0), True) == "exact"  # the log is not poisoned
    assert accuracy_of(hotset.HotSet(hotset.NONE, "why", {}, 0.0), False) == "none"


def test_the_atime_walk_runs_at_most_once_per_interval(tmp_path, monkeypatch):
    v2 = tmp_path / "v2"
    (v2 / "blobs").mkdir(parents=True)
    now = [1000.0]
    walks = []
    monkeypatch.setattr(hotset, "atime_hot", lambda *a: walks.append(a) or {"24h": hotset.Window(0, 0)})
    monkeypatch.setattr(hotset, "atime_policy", lambda flags: "relatime")  # whatever /tmp's mount says
    source = hotset.HotSetSource(v2, None, clock=lambda: now[0], walk_every=300)
    source.measure()
    now[0] += 299
    source.measure()
    assert len(walks) == 1
    now[0] += 1
    source.measure()
    assert len(walks) == 2
