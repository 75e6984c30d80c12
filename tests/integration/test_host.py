"""On whatever machine runs the suite, the exporter agrees with /proc/meminfo, nproc and df.

What is compared, and why that much:
- MemTotal: exactly; it does not change while a host runs.
- CPUs: ``nproc`` prints the CPUs this process may run on (its affinity), which the cgroup cpuset
  bounds but a CFS quota does not. So: dtr_cpu_host_cores equals the online CPUs, and the
  exporter's usable CPUs (cpuset and quota applied) never exceed nproc (assuming no taskset
  narrower than the cpuset on the test runner) nor the host's count.
- df of the nearest existing parent of /var/lib/docker: mountpoint and size exactly; available
  within 256 MiB, because other work on the machine writes between the two readings.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.mounts import nearest_existing
from tests.conftest import foundation_only
from tests.support import require, run_exporter

AVAIL_TOLERANCE = 256 * 2**20


@pytest.fixture(scope="module")
def host_metrics() -> dict:
    done = run_exporter("metrics", *foundation_only())
    assert done.returncode == 0, done.stderr
    samples = {}
    for family in text_string_to_metric_families(done.stdout):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def value(samples: dict, name: str, **labels) -> float:
    (match,) = [s for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    return match.value


def test_every_collector_succeeds_on_this_host(host_metrics):
    assert {s.labels["collector"]: s.value for s in host_metrics["dtr_exporter_collector_success"]} == \
        {"memory": 1, "cpu": 1, "filesystem": 1, "diskio": 1}


def test_memory_total_matches_proc_meminfo(host_metrics):
    line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal:"))
    assert value(host_metrics, "dtr_memory_total_bytes") == int(line.split()[1]) * 1024


def test_cpus_agree_with_nproc(host_metrics):
    nproc = int(subprocess.run([require("nproc")], capture_output=True, text=True, check=True).stdout)
    host = value(host_metrics, "dtr_cpu_host_cores")
    usable = value(host_metrics, "dtr_cpu_cores")
    assert host == os.sysconf("SC_NPROCESSORS_ONLN")
    assert 0 < usable <= nproc <= host


def test_docker_filesystem_agrees_with_df(host_metrics):
    path = nearest_existing(Path("/var/lib/docker"))
    out = subprocess.run([require("df"), "-B1", "--output=size,avail,target", str(path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    size, avail, target = int(out[0]), int(out[1]), out[2]
    labels = {"role": "docker"}
    (sample,) = [s for s in host_metrics["dtr_filesystem_size_bytes"] if s.labels["role"] == "docker"]
    assert sample.labels["mountpoint"] == target
    assert sample.value == size
    assert abs(value(host_metrics, "dtr_filesystem_avail_bytes", **labels) - avail) <= AVAIL_TOLERANCE
