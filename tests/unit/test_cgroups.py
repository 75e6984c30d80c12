"""The CPUs a DTR process may use, from its cgroups: ancestors, cpusets, v1 and v2, cgroup namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import cgroups
from tests.support import FIXTURES

HOSTS = FIXTURES / "hosts"
REGISTRY = 2817  # the registry's pid in every tests/fixtures/hosts tree


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def v2_host(tmp_path: Path, reader_cgroup_ns_depth: int, registry_path: str) -> tuple[Path, Path]:
    """A cgroup v2 host: registry in /system.slice/docker-reg.scope, dtr limits set on system.slice."""
    sysfs = tree(tmp_path / "sys", {
        "fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
        "fs/cgroup/system.slice/cpu.max": "300000 100000\n",
        "fs/cgroup/system.slice/docker-reg.scope/cpu.max": "max 100000\n",
        "fs/cgroup/system.slice/docker-reg.scope/cpuset.cpus.effective": "0-7\n",
        "fs/cgroup/system.slice/docker-exp.scope/cpu.max": "25000 100000\n",
        "fs/cgroup/init.scope/cpu.max": "max 100000\n",
    })
    procfs = tree(tmp_path / "proc", {
        "1/cgroup": "0::" + "/.." * reader_cgroup_ns_depth + "/init.scope\n",
        f"{REGISTRY}/cgroup": f"0::{registry_path}\n",
    })
    return procfs, sysfs


def test_a_limit_on_a_v2_parent_counts(tmp_path):
    procfs, sysfs = v2_host(tmp_path, 0, "/system.slice/docker-reg.scope")
    assert cgroups.cpu_limit(procfs, sysfs, REGISTRY) == (True, 3.0)


@pytest.mark.parametrize("depth, path", [
    (2, "/../docker-reg.scope"),  # the reader in its own container's namespace: /system.slice/docker-exp.scope
    (1, "/docker-reg.scope"),  # the reader's namespace rooted at /system.slice: the registry below it
    (2, "/../../system.slice/docker-reg.scope"),
])
def test_paths_relative_to_a_private_cgroup_namespace(tmp_path, depth, path):
    procfs, sysfs = v2_host(tmp_path, depth, path)
    assert cgroups.cpu_limit(procfs, sysfs, REGISTRY) == (True, 3.0)


def test_an_ambiguous_or_unreachable_path_is_not_guessed(tmp_path):
    procfs, sysfs = v2_host(tmp_path, 2, "/../docker-reg.scope")
    tree(sysfs, {"fs/cgroup/user.slice/docker-reg.scope/cpu.max": "max 100000\n"})  # a second */docker-reg.scope
    assert cgroups.cpu_limit(procfs, sysfs, REGISTRY) == (False, None)
    procfs, sysfs = v2_host(tmp_path / "b", 0, "/../../system.slice/docker-reg.scope")  # above the hierarchy
    assert cgroups.cpu_limit(procfs, sysfs, REGISTRY) == (False, None)


def test_v1_nesting_and_cpusets_on_the_rhel8_fixture():
    # dtr.slice carries cfs_quota_us 150000; the registry's own scope has none
    assert cgroups.cpu_limit(HOSTS / "rhel8/proc", HOSTS / "rhel8/sys", REGISTRY) == (True, 1.5)
    assert cgroups.cpu_limit(HOSTS / "ubuntu2004/proc", HOSTS / "ubuntu2004/sys", REGISTRY) == (True, 2)


def test_rhel7_names_the_hierarchy_cpuacct_cpu():
    # 3.10 writes "4:cpuacct,cpu:/docker/<id>"; the directory is cpu,cpuacct, reached through the cpuacct link
    text = (HOSTS / "rhel7/proc" / str(REGISTRY) / "cgroup").read_text()
    assert "4:cpuacct,cpu:/docker/" in text
    assert cgroups.cpu_limit(HOSTS / "rhel7/proc", HOSTS / "rhel7/sys", REGISTRY) == (True, 2)


def test_a_hybrid_hosts_unified_hierarchy_is_not_read_for_cpu(tmp_path):
    sysfs = tree(tmp_path / "sys", {"fs/cgroup/unified/docker/reg/cpu.max": "10000 100000\n",
                                    "fs/cgroup/cpu,cpuacct/docker/reg/cpu.cfs_quota_us": "-1\n"})
    procfs = tree(tmp_path / "proc", {"5/cgroup": "4:cpu,cpuacct:/docker/reg\n0::/docker/reg\n"})
    assert cgroups.cpu_limit(procfs, sysfs, 5) == (True, None)


def test_unreadable_limit_files_are_no_limit(tmp_path):
    procfs, sysfs = v2_host(tmp_path, 0, "/system.slice/docker-reg.scope")
    (sysfs / "fs/cgroup/system.slice/cpu.max").unlink()
    (sysfs / "fs/cgroup/system.slice/cpu.max").mkdir()  # read fails with IsADirectoryError
    assert cgroups.cpu_limit(procfs, sysfs, REGISTRY) == (True, 8)


def test_a_process_without_a_cgroup_file(tmp_path):
    assert cgroups.cpu_limit(tmp_path, tmp_path, 42) == (False, None)


def test_online_cpus(tmp_path):
    assert cgroups.online_cpus(tmp_path) is None
    tree(tmp_path, {"devices/system/cpu/online": "0-3,6\n"})
    assert cgroups.online_cpus(tmp_path) == 5
