"""What this node needs: the page cache the registry can have, recommended sizes, the file-only hit ratio."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from exporter import cgroups, procfs, recommend
from exporter.recommend import GiB

KIB = 1024
# the lines that matter of a 16 GiB host running DTR (kB as /proc/meminfo writes them)
MEMINFO = procfs.parse_meminfo("""MemTotal:       16384000 kB
MemFree:         1200000 kB
Cached:         11000000 kB
AnonPages:       2500000 kB
Shmem:            300000 kB
SReclaimable:     400000 kB
SUnreclaim:       150000 kB
KernelStack:       20000 kB
PageTables:        30000 kB
Percpu:             5000 kB
HugePages_Total:     512
Hugepagesize:       2048 kB
""")


def test_the_cache_available_is_memory_minus_what_cannot_be_reclaimed():
    kept = 2500000 + 300000 + 150000 + 20000 + 30000 + 5000  # SReclaimable is reclaimable: not counted
    huge = 512 * 2048
    assert recommend.page_cache_available_bytes(MEMINFO) == (16384000 - kept - huge) * KIB


def test_hugetlb_counts_every_huge_page_size_where_the_kernel_gives_it():
    meminfo = {**MEMINFO, "Hugetlb": 3 * GiB}
    assert recommend.unreclaimable_bytes(meminfo) == (2500000 + 300000 + 150000 + 20000 + 30000 + 5000) * KIB + 3 * GiB


def test_a_cgroup_limit_caps_the_cache_available():
    assert recommend.page_cache_available_bytes(MEMINFO, cgroup_room=GiB) == GiB
    assert recommend.page_cache_available_bytes(MEMINFO, cgroup_room=None) > GiB


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_v1_room_is_the_least_limit_minus_anonymous_memory_up_the_hierarchy(tmp_path):
    sysfs = tree(tmp_path / "sys", {
        "fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",  # the root: no limit
        "fs/cgroup/memory/memory.stat": "rss 100\ntotal_rss 900000000\n",
        "fs/cgroup/memory/docker/memory.limit_in_bytes": "8589934592\n",
        "fs/cgroup/memory/docker/memory.stat": "cache 5\nrss 0\ntotal_rss 7000000000\n",
        "fs/cgroup/memory/docker/reg/memory.limit_in_bytes": "2147483648\n",
        "fs/cgroup/memory/docker/reg/memory.stat": "cache 5\nrss 500000000\ntotal_rss 500000000\n",
    })
    proc = tree(tmp_path / "proc", {"1/cgroup": "4:memory:/\n", "42/cgroup": "4:memory:/docker/reg\n2:cpu:/\n"})
    # reg: 2 GiB - 0.5 GB; docker: 8 GiB - 7 GB (less: its other containers' anonymous memory)
    assert cgroups.memory_room(proc, sysfs, 42) == 8589934592 - 7000000000


def test_v2_room_reads_memory_max_high_and_anon(tmp_path):
    sysfs = tree(tmp_path / "sys", {
        "fs/cgroup/cgroup.controllers": "cpu memory\n",
        "fs/cgroup/system.slice/memory.max": "max\n",
        "fs/cgroup/system.slice/memory.stat": "anon 1\nfile 2\n",
        "fs/cgroup/system.slice/docker-reg.scope/memory.max": "4294967296\n",
        "fs/cgroup/system.slice/docker-reg.scope/memory.high": "3221225472\n",
        "fs/cgroup/system.slice/docker-reg.scope/memory.stat": "anon 221225472\nfile 99\n",
    })
    proc = tree(tmp_path / "proc", {"1/cgroup": "0::/init.scope\n",
                                    "42/cgroup": "0::/system.slice/docker-reg.scope\n"})
    assert cgroups.memory_room(proc, sysfs, 42) == 3 * 10**9


def test_no_limit_anywhere_is_no_room_figure(tmp_path):
    sysfs = tree(tmp_path / "sys", {"fs/cgroup/cgroup.controllers": "memory\n",
                                    "fs/cgroup/a/memory.max": "max\n", "fs/cgroup/a/memory.stat": "anon 5\n"})
    proc = tree(tmp_path / "proc", {"42/cgroup": "0::/a\n"})
    assert cgroups.memory_room(proc, sysfs, 42) is None


@pytest.mark.parametrize("limit, stat, room", [
    ("1000\n", "anon 300\n", 700), ("1000\n", "total_rss 1200\n", 0), ("max\n", "anon 1\n", None),
    ("9223372036854771712\n", "rss 1\n", None), (None, None, None), ("1000\n", None, 1000),
])
def test_memory_headroom(limit, stat, room):
    assert cgroups.memory_headroom(limit, stat) == room


def test_recommended_memory_is_processes_plus_hot_set_plus_headroom():
    processes, hot = 3 * GiB, 10 * GiB
    assert recommend.recommended_memory_bytes(processes, hot) == 13 * GiB + GiB + math.ceil(0.2 * 13 * GiB)


def test_recommended_memory_never_below_the_kb_four_gb():
    assert recommend.recommended_memory_bytes(200 * 2**20, 0) == 4 * GiB


def test_recommended_disk_is_use_plus_growth_over_the_horizon_plus_the_margin():
    day = 86400
    assert recommend.recommended_disk_bytes(100 * 10**9, 10**9 / day) == 100 * 10**9 + 90 * 10**9 + 30 * 10**9
    assert recommend.recommended_disk_bytes(100 * 10**9, 10**9 / day, 30 * day) == 160 * 10**9
    assert recommend.recommended_disk_bytes(100 * 10**9, -5.0) == 130 * 10**9  # shrinking is not credited
    assert recommend.recommended_disk_bytes(100 * 10**9, None) == 130 * 10**9  # growth not measured yet


@pytest.mark.parametrize("busy, cores", [(0.1, 2), (1.6, 2), (1.61, 3), (3.3, 5), (7.9, 10)])
def test_recommended_cores_keep_busy_under_0_8_and_never_below_two(busy, cores):
    assert recommend.recommended_cpu_cores(busy) == cores


def test_the_file_hit_ratio_ignores_socket_reads():
    # figures measured on docker-registry 2.8 (docs/workload.md): a 256 MiB push, then one cold pull
    push_rchar, cold_rchar, cold_read = 268436224, 268435901, 268435456
    rchar_ratio = 1 - cold_read / (push_rchar + cold_rchar)
    assert rchar_ratio > 0.49  # the push reads as half the reads served from cache
    assert recommend.file_hit_ratio(served_bytes=256 * 2**20, read_bytes=cold_read) == 0.0
    assert recommend.file_hit_ratio(served_bytes=512 * 2**20, read_bytes=cold_read) == 0.5
    assert recommend.file_hit_ratio(0, 10) is None
    assert recommend.file_hit_ratio(100, 500) == 0.0  # readahead past what was served
