"""The host collectors (memory, cpu, filesystem, diskio) on the four recorded profiles.

memory and cpu read only proc/ and sys/, so they run here in-process. filesystem and
diskio also need statvfs and stat of real paths: they are checked through the real CLI run
in the profile's mount namespace (see tests/conftest.py), parsed from its exposition.
"""

from __future__ import annotations

import shutil

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import blockdev, dtr
from exporter.collectors import DEFAULTS, Context, Found, create
from exporter.exposition import to_text
from exporter.sampler import Job, Sampler
from tests.conftest import PROFILES, profile_context, profile_dir

GiB = 2**30
STORE = "/var/lib/docker/volumes/dtr-registry-0123456789ab/_data"


def copy_profile(name: str, tmp_path) -> Context:
    """A writable copy of a profile, for the cases that edit a file."""
    for part in ("proc", "sys"):
        shutil.copytree(profile_dir(name) / part, tmp_path / part, symlinks=True)
    return Context(procfs=tmp_path / "proc", sysfs=tmp_path / "sys")


# ---- memory

@pytest.mark.parametrize("profile, total_kb, cache_kb, refaults, pressure", [
    ("vm4g", 3984588, 612340 + 1403112, 4410, {"some": 1.203, "full": 0.904}),
    ("small", 2014084, 301220 + 688104, 190233, {}),  # Linux 4.19: no PSI, workingset_refault (file only)
    ("large", 65842364, 20112300 + 28800412, 88, {"some": 0.002001, "full": 0.0}),
    ("container", 16377420, 4012332 + 5123004, 1201, {"some": 0.040112, "full": 0.010001}),
])
def test_memory(profile, total_kb, cache_kb, refaults, pressure):
    m = create("memory", profile_context(profile)).collect()
    assert m.total_bytes == total_kb * 1024
    assert m.page_cache_bytes == cache_kb * 1024
    assert m.refaults_file == refaults
    assert m.pressure == pytest.approx(pressure)
    assert 0 < m.available_bytes < m.total_bytes


def test_memory_without_memavailable_estimates_it(tmp_path):
    ctx = copy_profile("small", tmp_path)  # before Linux 3.14; more in test_parsing_fixtures.py
    meminfo = ctx.procfs / "meminfo"
    meminfo.write_text("".join(line for line in meminfo.read_text().splitlines(True)
                               if not line.startswith("MemAvailable")))
    assert create("memory", ctx).collect().available_bytes == (565060 + 301220 + 688104 + 242724) * 1024


# ---- cpu

@pytest.mark.parametrize("profile, host, usable", [
    ("vm4g", 2, 2.0),  # no registry process: the online CPUs
    ("small", 1, 1.0),
    ("large", 16, 12.0),  # registry pid 4242 in system.slice/dtr.service: cfs_quota_us 1200000 / period 100000
    ("container", 8, 8.0),  # the exporter's own cpu.max 1.5 and cpuset 2-5 do not count: no DTR process seen
])
def test_cpu_counts(profile, host, usable):
    c = create("cpu", profile_context(profile)).collect()
    assert (c.host_cpus, c.usable_cpus) == (host, usable)
    assert set(c.seconds_by_mode) == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}
    assert c.busy_ratio is None  # one sample is no window


def test_cpu_pressure_keeps_some_only():
    assert create("cpu", profile_context("container")).collect().pressure == {"some": 51.2}
    assert create("cpu", profile_context("small")).collect().pressure == {}


def test_the_exporters_own_quota_is_not_dtrs(tmp_path):
    """The Swarm stack's cpus: "0.25" on the exporter, a 2-CPU cgroup v1 host, DTR unlimited: 2, not 0.25."""
    ctx = copy_profile("small", tmp_path)
    cpu = ctx.sysfs / "fs/cgroup/cpu,cpuacct"
    (cpu / "docker/exporter").mkdir(parents=True)
    (cpu / "docker/exporter/cpu.cfs_quota_us").write_text("25000\n")
    (cpu / "docker/exporter/cpu.cfs_period_us").write_text("100000\n")
    (ctx.procfs / "self/cgroup").write_text("4:cpu,cpuacct:/docker/exporter\n")
    c = create("cpu", ctx).collect()
    assert (c.usable_cpus, c.usable_source) == (1.0, "online CPUs: no DTR process found")


def test_online_cpus_come_from_sysfs_before_proc_stat(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)
    (ctx.sysfs / "devices/system/cpu").mkdir(parents=True)
    (ctx.sysfs / "devices/system/cpu/online").write_text("0-2,5\n")
    assert create("cpu", ctx).collect().host_cpus == 4


def test_the_registry_governs_and_the_detail_names_it(tmp_path):
    ctx = copy_profile("large", tmp_path)
    (ctx.sysfs / "fs/cgroup/cpu,cpuacct/system.slice/dtr.service/cpu.cfs_quota_us").write_text("250000\n")
    other = dtr.Process("api", "dtr-api-0123456789ab", 4300, 1.0)  # a tighter limit on another component
    c = create("cpu", ctx).collect(Found(dtr_processes=(other,)))
    assert (c.usable_cpus, c.usable_source) == (2.5, "cgroup of pid 4242 (registry)")


def test_hostconfig_decides_when_the_cgroup_cannot_be_found(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)  # no /proc/<pid> for Docker's pid: its cgroup cannot be read
    limited = dtr.Process("registry", "dtr-registry-0123456789ab", 99999, 0.5)
    c = create("cpu", ctx).collect(Found(dtr_processes=(limited,)))
    assert (c.usable_cpus, c.usable_source) == (0.5, "Docker HostConfig (registry, container dtr-registry-0123456789ab)")


def test_cpu_busy_ratio_over_two_samples(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)
    collector = create("cpu", ctx)
    collector.collect()
    stat = ctx.procfs / "stat"
    lines = stat.read_text().splitlines()
    ticks = [int(t) for t in lines[0].split()[1:]]
    ticks[0] += 300  # user
    ticks[3] += 600  # idle
    ticks[4] += 100  # iowait counts as idle
    stat.write_text("\n".join(["cpu  " + " ".join(map(str, ticks)), *lines[1:]]) + "\n")
    c = collector.collect()
    assert c.busy_ratio == pytest.approx(0.3)
    assert c.busy_window_seconds > 0


# ---- diskio: which disks hold a device

@pytest.mark.parametrize("profile, dev, source, disks", [
    ("vm4g", (254, 1), "/dev/vda1", ["vda"]),  # a partition counts as its disk
    ("vm4g", (254, 0), "/dev/vda", ["vda"]),
    ("large", (253, 0), "/dev/mapper/vg0-docker", ["sdb", "sdc"]),  # LVM over two partitions on two disks
    ("large", (259, 2), "/dev/nvme0n1p2", ["nvme0n1"]),
    ("small", (0, 99), "/dev/sda1", ["sda"]),  # unknown major:minor: found by the source's name
    ("small", (0, 99), "overlay", []),
])
def test_disks_under(profile, dev, source, disks):
    assert blockdev.disks_under(profile_context(profile).sysfs, *dev, source) == disks


# ---- filesystem and diskio through the real CLI in the profile's namespace

def metrics(profile_run, profile) -> dict[str, list]:
    done = profile_run(profile, "metrics")
    assert done.returncode == 0, done.stderr
    return {f.name: f.samples for f in text_string_to_metric_families(done.stdout)}


def filesystems(families) -> dict[str, dict]:
    out = {}
    for field in ("size_bytes", "avail_bytes", "files", "files_free"):
        for s in families[f"dtr_filesystem_{field}"]:
            out.setdefault(s.labels["role"], dict(s.labels))[field] = s.value
    return out


@pytest.mark.parametrize("profile, docker, storage, free, inodes", [
    ("vm4g", ("/", "/dev/vda1", "ext4"), ("/", "/dev/vda1", "ext4"), 25 * GiB, 1638400),
    ("small", ("/", "/dev/sda1", "ext4"), None, 15 * GiB, 983040),
    ("large", ("/var/lib/docker", "/dev/mapper/vg0-docker", "xfs"),
     ("/var/lib/docker", "/dev/mapper/vg0-docker", "xfs"), 2048 * GiB, 200000000),
    ("container", ("/", "/dev/sda2", "ext4"), (STORE, "nas.example.com:/export/dtr", "nfs4"), 100 * GiB, 6553600),
])
def test_filesystems(profile_run, profile, docker, storage, free, inodes):
    found = filesystems(metrics(profile_run, profile))
    assert set(found) == ({"docker", "storage"} if storage else {"docker"})
    expected = {"docker": docker, "storage": storage}
    for role, fs in found.items():
        assert (fs["mountpoint"], fs["device"], fs["fstype"]) == expected[role]
        assert fs["size_bytes"] == fs["avail_bytes"] == free  # the profile's empty tmpfs
        assert fs["files"] == inodes and inodes - 10 < fs["files_free"] < inodes


@pytest.mark.parametrize("profile, devices, network", [
    ("vm4g", {"vda"}, 0), ("small", {"sda"}, 0), ("large", {"sdb", "sdc"}, 0), ("container", set(), 1)])
def test_diskio(profile_run, profile, devices, network):
    families = metrics(profile_run, profile)
    assert {s.labels["device"] for s in families["dtr_storage_device_read_bytes"]} == devices
    (nfs,) = families["dtr_storage_network_filesystem"]
    assert nfs.value == network
    busy = families.get("dtr_storage_device_busy_ratio")
    assert (busy[0].value if busy else None) == (0.0 if devices else None)  # recorded counters do not move


@pytest.mark.parametrize("profile", PROFILES)
def test_every_foundation_collector_succeeds_on_every_profile(profile_run, profile):
    families = metrics(profile_run, profile)
    assert {s.labels["collector"]: s.value for s in families["dtr_exporter_collector_success"]} == \
        {"memory": 1, "cpu": 1, "filesystem": 1, "diskio": 1}


def test_a_broken_source_fails_its_collector_only(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)
    (ctx.procfs / "meminfo").write_text("MemTotal: lots kB\n")
    sampler = Sampler({name: Job(create(name, ctx), 15, 5) for name in ("memory", "cpu")})
    sampler.run_all()
    snapshot = sampler.snapshot()
    assert not snapshot.statuses["memory"].ok and "not a number" in snapshot.statuses["memory"].error
    assert snapshot.statuses["cpu"].ok
    text = to_text(snapshot, []).decode()
    assert 'dtr_exporter_collector_success{collector="memory"} 0.0' in text
    assert "dtr_cpu_host_cores 2.0" in text and "dtr_memory_total_bytes" not in text
    sampler.stop()


def test_foundation_collectors_are_on_by_default():
    assert all(DEFAULTS[name][0] for name in ("memory", "cpu", "filesystem", "diskio"))
