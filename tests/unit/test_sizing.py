"""Sizing verdicts: per recorded profile through the real CLI, and sizing.evaluate on its own."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from exporter import sizing
from exporter.config import Config
from exporter.collectors.cpu import CpuReading
from exporter.collectors.diskio import DiskioReading
from exporter.collectors.filesystem import Filesystem, FilesystemReading
from exporter.collectors.memory import MemoryReading

GiB = 2**30
OK, FAIL, UNKNOWN, NA = sizing.OK, sizing.FAIL, sizing.UNKNOWN, sizing.NOT_APPLICABLE

# (check, severity) -> state, for what the foundation's collectors can judge on one pass
EXPECTED = {
    "vm4g": (1, {("memory_total", "critical"): OK, ("disk_free", "warning"): FAIL, ("disk_free", "critical"): OK,
                 ("cpu_cores", "warning"): OK, ("storage_io", "warning"): OK, ("inodes_free", "warning"): OK,
                 ("inodes_free", "critical"): OK}),
    "small": (1, {("memory_total", "critical"): FAIL, ("disk_free", "warning"): FAIL,
                  ("disk_free", "critical"): FAIL, ("cpu_cores", "warning"): FAIL, ("storage_io", "warning"): OK,
                  ("inodes_free", "warning"): UNKNOWN, ("inodes_free", "critical"): UNKNOWN}),  # no --storage.path
    "large": (0, {("memory_total", "critical"): OK, ("disk_free", "warning"): OK, ("disk_free", "critical"): OK,
                  ("cpu_cores", "warning"): OK, ("storage_io", "warning"): OK, ("inodes_free", "warning"): OK,
                  ("inodes_free", "critical"): OK}),
    # cpu_cores: the exporter's own 1.5-CPU limit is not DTR's, and no DTR process is recorded: 8 online CPUs
    "container": (0, {("memory_total", "critical"): OK, ("disk_free", "warning"): OK, ("disk_free", "critical"): OK,
                      ("cpu_cores", "warning"): OK, ("storage_io", "warning"): NA,  # the store is on NFS
                      ("inodes_free", "warning"): OK, ("inodes_free", "critical"): OK}),
}


@pytest.mark.parametrize("profile", EXPECTED)
def test_profile_verdicts(profile_run, profile):
    status, expected = EXPECTED[profile]
    done = profile_run(profile, "check", "--output", "json")
    assert done.returncode == status, done.stderr
    report = json.loads(done.stdout)
    states = {(c["check"], c["severity"]): c["state"] for c in report["checks"]}
    assert {key: states[key] for key in expected} == expected
    # one pass of the foundation cannot judge these: they are unknown, never passing or failing
    assert states[("cpu_busy", "warning")] == UNKNOWN  # the recorded /proc/stat does not move
    assert states[("page_cache_hit_ratio", "warning")] == UNKNOWN
    assert report["ok"] is (status == 0)


def readings(mem=3.8 * GiB, cpus=2.0, avail=(25e9,), busy=None, io_busy=0.1, files=(1000, 500), fstype="ext4"):
    fs = tuple(Filesystem(role, "/", "/dev/vda1", fstype, 100 * 10**9, int(a), files[0], files[1], fstype == "nfs4")
               for role, a in zip(("docker", "storage"), avail))
    return {
        "memory": MemoryReading(int(mem), int(mem / 2), 0, 0, 0, None),
        "cpu": CpuReading(4, cpus, {}, busy, 300.0 if busy is not None else 0.0),
        "filesystem": FilesystemReading(fs),
        "diskio": DiskioReading((), fstype, fstype == "nfs4", io_busy, 300.0),
    }


def states(r, thresholds=None):
    thresholds = thresholds or Config().thresholds_in_force()
    return {(v.check, v.severity): v.state for v in sizing.evaluate(r, thresholds)}


def test_every_default_check_and_severity_gets_a_verdict():
    verdicts = sizing.evaluate(readings(), Config().thresholds_in_force())
    assert {(v.check, v.severity) for v in verdicts} == {(c.name, s) for c in sizing.CHECKS.values()
                                                         for s in c.defaults}


def test_a_vm_sold_as_4gb_passes_memory_only_with_the_tolerance():
    assert states(readings(mem=3.8 * GiB))[("memory_total", "critical")] == OK
    assert states(readings(mem=3.5 * GiB))[("memory_total", "critical")] == FAIL
    strict = Config(memory_tolerance=0).thresholds_in_force()
    assert states(readings(mem=3.8 * GiB), strict)[("memory_total", "critical")] == FAIL


def test_disk_free_takes_the_smallest_filesystem():
    verdicts = {(v.check, v.severity): v for v in sizing.evaluate(readings(avail=(100e9, 25e9)),
                                                                    Config().thresholds_in_force())}
    warning = verdicts[("disk_free", "warning")]
    assert (warning.state, warning.observed, warning.detail) == (FAIL, 25e9, "storage /")
    assert verdicts[("disk_free", "critical")].state == OK


def test_a_threshold_met_exactly_passes_both_ways():
    s = states(readings(avail=(30e9,), cpus=2.0, busy=0.8))
    assert s[("disk_free", "warning")] == s[("cpu_cores", "warning")] == s[("cpu_busy", "warning")] == OK
    assert states(readings(busy=0.81))[("cpu_busy", "warning")] == FAIL
    assert states(readings(io_busy=0.95))[("storage_io", "warning")] == FAIL


def test_missing_readings_are_unknown_not_passing_or_failing():
    s = states({})
    assert set(s.values()) == {UNKNOWN}


def test_a_network_store_makes_storage_io_not_applicable():
    assert states(readings(fstype="nfs4"))[("storage_io", "warning")] == NA


def test_a_filesystem_without_an_inode_limit_is_not_applicable():
    s = states(readings(avail=(50e9, 50e9), files=(0, 0)))
    assert s[("inodes_free", "warning")] == s[("inodes_free", "critical")] == NA


def test_inodes_free_is_judged_on_the_storage_filesystem():
    s = states(readings(avail=(50e9, 50e9), files=(1000, 80)))
    assert (s[("inodes_free", "warning")], s[("inodes_free", "critical")]) == (FAIL, OK)


def test_an_external_storage_driver_makes_local_storage_checks_not_applicable():
    r = readings(avail=(50e9, 50e9), io_busy=0.99)
    r["dtr_api"] = SimpleNamespace(storage_driver="s3")
    s = states(r)
    for check in ("storage_io", "inodes_free", "page_cache_hit_ratio", "storage_forecast"):
        assert s[(check, "warning")] == NA, check
    assert s[("disk_free", "warning")] == OK  # Docker's own data root still needs its space
    r["dtr_api"] = SimpleNamespace(storage_driver="filesystem")
    assert states(r)[("storage_io", "warning")] == FAIL


def test_a_disabled_check_or_severity_is_not_evaluated():
    s = states(readings(), {"disk_free": {"critical": 20e9}})
    assert s == {("disk_free", "critical"): OK}

