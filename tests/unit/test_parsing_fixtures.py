"""Parsing on real captures of other projects, and the host collectors on the hosts those come from.

The captures (tests/fixtures/parsing/, origin in its README) were written by kernels older and
newer than the recorded profiles: no MemAvailable, workingset_refault before 5.9, 14/18/20-field
diskstats in one file, a cpu `full` PSI line. Expected values are read from the same file here
with plain splitting, so a parser that skips or misreads a line fails.

Then the collectors on degraded trees: PSI that cannot be read (RHEL 8), a line that cannot be
parsed, a btrfs store on LVM (SLES), cciss disk names; each must cost only what it carries.
"""

from __future__ import annotations

import errno
import logging
import re
import shutil
from pathlib import Path

import pytest

from exporter import procfs
from exporter import blockdev
from exporter.collectors import Context, Found, create
from exporter.collectors.memory import estimate_available
from exporter.exposition import to_text
from exporter.sampler import Job, Sampler, Snapshot
from tests.conftest import profile_dir
from tests.support import FIXTURES

PARSING = FIXTURES / "parsing"
CAPTURES = ("node_exporter", "procfs")


def proc(capture: str) -> Path:
    return PARSING / capture / "proc"


def lines(capture: str, *parts: str) -> list[list[str]]:
    return [line.split() for line in (proc(capture).joinpath(*parts)).read_text().splitlines() if line.strip()]


def field(capture: str, file: str, key: str) -> int:
    """The number after ``key`` in a ``key value`` or ``key: value kB`` file."""
    (row,) = [row for row in lines(capture, file) if row[0].rstrip(":") == key]
    return int(row[1])


@pytest.fixture
def errors() -> procfs.ParseErrors:
    return procfs.ParseErrors()


# ---- the parsers on the captures

@pytest.mark.parametrize("capture", CAPTURES)
def test_meminfo_capture_every_line_in_its_unit(capture, errors):
    info = procfs.parse_meminfo(procfs.read(proc(capture), "meminfo"), errors)
    rows = lines(capture, "meminfo")
    assert len(info) == len(rows) and errors.counts() == {}
    for row in rows:
        key, value = row[0].rstrip(":"), int(row[1])
        assert info[key] == (value * 1024 if row[2:] == ["kB"] else value), key
    assert [r[0] for r in rows if len(r) == 2] == [f"{k}:" for k in procfs.MEMINFO_COUNTS]
    assert "MemAvailable" not in info  # both captures come from kernels before 3.14


def test_vmstat_capture_before_5_9_has_only_the_file_refault_counter(errors):
    vm = procfs.parse_keyvalue(procfs.read(proc("node_exporter"), "vmstat"), "vmstat", errors)
    assert len(vm) == len(lines("node_exporter", "vmstat")) and errors.counts() == {}
    assert vm["workingset_refault"] == field("node_exporter", "vmstat", "workingset_refault")
    assert "workingset_refault_file" not in vm


@pytest.mark.parametrize("capture", CAPTURES)
def test_diskstats_capture_of_14_18_and_20_fields(capture, errors):
    stats = procfs.parse_diskstats(procfs.read(proc(capture), "diskstats"), errors)
    rows = lines(capture, "diskstats")
    assert {len(r) for r in rows} == {14, 18, 20} and errors.counts() == {}
    assert set(stats) == {r[2] for r in rows}
    for row in rows:
        if row[2] in ("sda", "sdb", "sdc"):  # 14, 18 and 20 fields respectively (the last one per name)
            last = next(r for r in reversed(rows) if r[2] == row[2])
            assert stats[row[2]] == procfs.DiskStat(row[2], int(last[5]) * 512, int(last[9]) * 512,
                                                    int(last[12]) / 1000)


@pytest.mark.parametrize("capture", CAPTURES)
def test_stat_capture(capture, errors):
    modes, cpus = procfs.parse_stat_cpu(procfs.read(proc(capture), "stat"), errors)
    rows = lines(capture, "stat")
    aggregate = next(r for r in rows if r[0] == "cpu")
    assert cpus == sum(1 for r in rows if r[0].startswith("cpu") and r[0][3:].isdigit())
    assert [modes[m] for m in procfs.CPU_MODES] == [int(t) / 100 for t in aggregate[1:9]]
    assert errors.counts() == {}


@pytest.mark.parametrize("capture, resource", [(c, r) for c in CAPTURES for r in ("cpu", "io", "memory")])
def test_pressure_capture(capture, resource, errors):
    found = procfs.read_pressure(proc(capture), resource, errors)
    expected = {r[0]: int(r[-1].removeprefix("total=")) / 1e6 for r in lines(capture, "pressure", resource)}
    assert found == expected and errors.counts() == {}


def test_cpu_pressure_capture_with_a_full_line_keeps_some():
    """Linux 5.13+ writes a `full` line in pressure/cpu too; the cpu collector publishes `some`."""
    assert [r[0] for r in lines("node_exporter", "pressure", "cpu")] == ["some", "full"]
    some = int(lines("node_exporter", "pressure", "cpu")[0][-1].removeprefix("total=")) / 1e6
    assert create("cpu", Context(procfs=proc("node_exporter"), sysfs=PARSING)).collect().pressure == {"some": some}


@pytest.mark.parametrize("capture, path", [("node_exporter", "1/mountinfo"), ("procfs", "26231/mountinfo")])
def test_mountinfo_capture(capture, path, errors):
    mounts = procfs.parse_mountinfo(procfs.read(proc(capture), *path.split("/")), errors)
    rows = lines(capture, *path.split("/"))
    assert [(m.mount_id, m.dev, m.fstype) for m in mounts] == [(int(r[0]), r[2], r[r.index("-") + 1]) for r in rows]
    assert errors.counts() == {}
    if capture == "node_exporter":  # \040 and \011 in a kubelet path
        assert any(" bafb9e5a" in m.mountpoint for m in mounts) and any("\tbafb9e5a" in m.mountpoint for m in mounts)
    else:
        assert mounts[-1].source == "/dev/mapper/rhel-root"


# ---- the memory collector on the captures' hosts

def test_memory_without_memavailable_is_estimated_with_the_low_watermark():
    """procfs' capture has min_free_kbytes: low watermark = 5/4 of it, as procps takes it."""
    m = create("memory", Context(procfs=proc("procfs"))).collect()
    kb = {k: field("procfs", "meminfo", k) for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable")}
    low = int((proc("procfs") / "sys/vm/min_free_kbytes").read_text()) * 5 // 4
    cache = kb["Active(file)"] + kb["Inactive(file)"]
    expected = kb["MemFree"] - low + cache - min(cache // 2, low) + kb["SReclaimable"] - min(kb["SReclaimable"] // 2, low)
    assert m.available_bytes == expected * 1024
    assert m.total_bytes == field("procfs", "meminfo", "MemTotal") * 1024
    assert (m.major_faults, m.refaults_file) == (None, None)  # this capture has no vmstat: absent, not 0


def test_memory_on_a_kernel_before_5_9_has_refaults_and_no_watermark():
    m = create("memory", Context(procfs=proc("node_exporter"))).collect()
    assert m.refaults_file == field("node_exporter", "vmstat", "workingset_refault")
    assert m.major_faults == field("node_exporter", "vmstat", "pgmajfault")
    kb = {k: field("node_exporter", "meminfo", k) for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable")}
    assert m.available_bytes == sum(kb.values()) * 1024  # no min_free_kbytes here: no watermark taken off
    assert m.page_cache_bytes == (kb["Active(file)"] + kb["Inactive(file)"]) * 1024


def test_an_unreadable_min_free_kbytes_means_no_watermark_and_is_counted(tmp_path):
    shutil.copytree(proc("procfs"), tmp_path / "proc")
    (tmp_path / "proc" / "sys" / "vm" / "min_free_kbytes").write_text("lots\n")
    before = procfs.PARSE_ERRORS.counts().get("sys/vm/min_free_kbytes", 0)
    m = create("memory", Context(procfs=tmp_path / "proc")).collect()
    assert m.available_bytes == estimate_available(procfs.parse_meminfo(procfs.read(proc("procfs"), "meminfo")), 0)
    assert procfs.PARSE_ERRORS.counts()["sys/vm/min_free_kbytes"] == before + 1


def test_memory_estimate_is_never_negative_and_needs_every_term():
    info = {"MemFree": 10, "Active(file)": 0, "Inactive(file)": 0, "SReclaimable": 0}
    assert estimate_available(info, 1000) == 0
    assert estimate_available({"MemFree": 10}, 0) is None


# ---- collectors on degraded trees

def copy_profile(name: str, tmp_path: Path) -> Context:
    for part in ("proc", "sys"):
        shutil.copytree(profile_dir(name) / part, tmp_path / part, symlinks=True)
    return Context(procfs=tmp_path / "proc", sysfs=tmp_path / "sys")


def unreadable_pressure(ctx: Context, how: str, monkeypatch) -> None:
    """/proc/pressure/* present but failing to read, the way each kernel or setup fails."""
    for resource in ("cpu", "memory", "io"):
        path = ctx.procfs / "pressure" / resource
        path.unlink()
        if how == "directory":
            path.mkdir()
        elif how == "loop":
            path.symlink_to(path)
        else:
            path.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n")
    if how in ("eopnotsupp", "permission"):  # RHEL 8 without psi=1; a locked-down /proc
        code = errno.EOPNOTSUPP if how == "eopnotsupp" else errno.EACCES
        real = Path.read_text

        def refuse(self, *args, **kwargs):
            if self.parent == ctx.procfs / "pressure":
                raise (PermissionError if code == errno.EACCES else OSError)(code, "refused", str(self))
            return real(self, *args, **kwargs)
        monkeypatch.setattr(Path, "read_text", refuse)


@pytest.mark.parametrize("how", ["eopnotsupp", "permission", "directory", "loop"])
def test_unreadable_psi_is_absent_and_every_collector_still_reads(tmp_path, monkeypatch, how):
    ctx = copy_profile("vm4g", tmp_path)
    unreadable_pressure(ctx, how, monkeypatch)
    memory, cpu = create("memory", ctx).collect(), create("cpu", ctx).collect()
    assert memory.pressure == {} and memory.total_bytes == 3984588 * 1024
    assert cpu.pressure == {} and cpu.host_cpus == 2
    assert create("diskio", ctx).collect().pressure == {}


def test_unreadable_vmstat_drops_its_counters_only(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)
    (ctx.procfs / "vmstat").unlink()
    (ctx.procfs / "vmstat").mkdir()
    m = create("memory", ctx).collect()
    assert (m.major_faults, m.refaults_file) == (None, None)
    assert m.total_bytes == 3984588 * 1024 and m.available_bytes is not None


def test_meminfo_without_memtotal_fails_naming_the_file(tmp_path):
    ctx = copy_profile("vm4g", tmp_path)
    meminfo = ctx.procfs / "meminfo"
    meminfo.write_text("".join(x for x in meminfo.read_text().splitlines(True) if not x.startswith("MemTotal")))
    with pytest.raises(ValueError, match="meminfo lacks 'MemTotal'"):
        create("memory", ctx).collect()


def test_a_unitless_memavailable_is_not_read_as_bytes(tmp_path):
    ctx = copy_profile("small", tmp_path)
    meminfo = ctx.procfs / "meminfo"
    text = meminfo.read_text()
    kb = int(re.search(r"^MemAvailable:\s+(\d+) kB$", text, re.M).group(1))
    meminfo.write_text(text.replace(f"{kb} kB", str(kb), 1))
    m = create("memory", ctx).collect()
    # dropped, so estimated from the other lines (no min_free_kbytes in the profile: no watermark)
    assert m.available_bytes == estimate_available(procfs.parse_meminfo(text), 0)
    assert m.available_bytes not in (kb, kb * 1024)


def test_bad_lines_are_published_per_file_and_logged_once(tmp_path, caplog):
    ctx = copy_profile("vm4g", tmp_path)
    with open(ctx.procfs / "vmstat", "a") as f:
        f.write("workingset_nodereclaim")  # a truncated last line
    (ctx.procfs / "pressure" / "memory").write_text("some avg10=0.00\nfull avg10=0.00 total=3000000\n")
    before = procfs.PARSE_ERRORS.counts()
    sampler = Sampler({"memory": Job(create("memory", ctx), 15, 5)})
    with caplog.at_level(logging.WARNING):
        sampler.run("memory")
        sampler.run("memory")
    snapshot = sampler.snapshot()
    assert snapshot.statuses["memory"].ok and snapshot.readings["memory"].pressure == {"full": 3.0}
    grown = {f: n - before.get(f, 0) for f, n in snapshot.parse_errors.items() if n != before.get(f, 0)}
    assert grown == {"vmstat": 2, "pressure/memory": 2}
    logged = [r.file for r in caplog.records if r.name == "exporter.procfs"]
    assert [f for f in logged if f in grown] == [f for f in ("vmstat", "pressure/memory") if f not in before]
    text = to_text(snapshot, []).decode()
    assert f'dtr_exporter_parse_errors_total{{file="vmstat"}} {float(snapshot.parse_errors["vmstat"])}' in text
    assert "dtr_memory_major_faults_total 20981.0" in text


def test_the_parse_error_family_is_published_when_empty():
    text = to_text(Snapshot(1, {}, True), []).decode()
    assert "# TYPE dtr_exporter_parse_errors_total counter" in text
    assert "dtr_exporter_parse_errors_total{" not in text


# ---- diskio: which disks, on SLES btrfs over LVM and on cciss

def sysfs_disk(sys: Path, name: str, major: int, minor: int, partitions: dict[str, int]) -> Path:
    """A disk and its partitions the way sysfs lays them out (class/block and dev/block links)."""
    disk = sys / "devices" / "pci0000:00" / "host0" / "block" / name
    disk.mkdir(parents=True)
    (sys / "class" / "block").mkdir(parents=True, exist_ok=True)
    (sys / "dev" / "block").mkdir(parents=True, exist_ok=True)
    for node, number in ((name, minor), *partitions.items()):
        here = disk if node == name else disk / node
        here.mkdir(exist_ok=True)
        if node != name:
            (here / "partition").write_text(f"{number - minor}\n")
        (sys / "class" / "block" / node).symlink_to(here)
        (sys / "dev" / "block" / f"{major}:{number}").symlink_to(here)
    return disk


def sysfs_dm(sys: Path, index: int, dm_name: str, slaves: list[Path]) -> None:
    dm = sys / "devices" / "virtual" / "block" / f"dm-{index}"
    (dm / "dm").mkdir(parents=True)
    (dm / "dm" / "name").write_text(dm_name + "\n")
    (dm / "slaves").mkdir()
    for slave in slaves:
        (dm / "slaves" / slave.name).symlink_to(slave)
    (sys / "class" / "block" / f"dm-{index}").symlink_to(dm)
    (sys / "dev" / "block" / f"254:{index}").symlink_to(dm)


@pytest.fixture
def sles(tmp_path) -> Context:
    """SLES 15: / is btrfs on LVM (/dev/mapper/system-root over sda2), a second LV with a '-' in its VG."""
    sys = tmp_path / "sys"
    sda = sysfs_disk(sys, "sda", 8, 0, {"sda1": 1, "sda2": 2})
    sdb = sysfs_disk(sys, "sdb", 8, 16, {"sdb1": 17})
    sysfs_dm(sys, 0, "system-root", [sda / "sda2"])
    sysfs_dm(sys, 1, "data--vg-registry", [sdb / "sdb1"])
    return Context(procfs=tmp_path / "proc", sysfs=sys)


@pytest.mark.parametrize("source, disks", [
    ("/dev/mapper/system-root", ["sda"]),  # what SLES' mountinfo says for /
    ("/dev/dm-0", ["sda"]),
    ("/dev/system/root", ["sda"]),
    ("/dev/data-vg/registry", ["sdb"]),  # device-mapper doubles the '-' inside a VG name
    ("/dev/mapper/data--vg-registry", ["sdb"]),
    ("/dev/mapper/other", []),
])
def test_a_btrfs_mount_finds_its_disk_from_the_source(sles, source, disks):
    # btrfs' st_dev and mountinfo major:minor are an anonymous 0:NN with no /sys/dev/block entry
    assert blockdev.disks_under(sles.sysfs, 0, 45, source) == disks


def test_diskio_on_a_btrfs_root_over_lvm_measures_the_disk(sles, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (sles.procfs / "self").mkdir(parents=True)
    (sles.procfs / "self" / "mountinfo").write_text(
        "59 1 0:45 /@/.snapshots/1/snapshot / rw,relatime shared:1 - btrfs /dev/mapper/system-root rw,subvolid=268\n")
    (sles.procfs / "diskstats").write_text(
        "   8       0 sda 1000 0 2000 10 500 0 4000 20 0 1500 30 0 0 0 0 0 0 0 0 0\n"
        "   8       2 sda2 900 0 1800 10 500 0 4000 20 0 1400 30 0 0 0 0 0 0 0 0 0\n"
        " 254       0 dm-0 900 0 1800 10 500 0 4000 20 0 1400 30 0 0 0 0 0 0 0 0 0\n")
    reading = create("diskio", sles).collect(Found(storage_path=store))
    assert [(d.name, d.read_bytes, d.written_bytes, d.io_seconds) for d in reading.devices] == \
        [("sda", 2000 * 512, 4000 * 512, 1.5)]
    assert reading.fstype == "btrfs"


def test_cciss_disks_are_found_under_their_kernel_name(tmp_path):
    """sysfs writes cciss/c0d0 as cciss!c0d0; diskstats, /dev and the device label keep the '/'."""
    sys = tmp_path / "sys"
    sysfs_disk(sys, "cciss!c0d0", 104, 0, {"cciss!c0d0p1": 1})
    stats = procfs.parse_diskstats(" 104 0 cciss/c0d0 1 0 8 1 2 0 16 1 0 3000 4 0 0 0 0\n"
                                   " 104 1 cciss/c0d0p1 1 0 8 1 2 0 16 1 0 3000 4 0 0 0 0\n")
    for found in (blockdev.disks_under(sys, 104, 1, "/dev/cciss/c0d0p1"),
                  blockdev.disks_under(sys, 0, 99, "/dev/cciss/c0d0p1")):
        assert found == ["cciss/c0d0"]
        assert stats[found[0]].io_seconds == 3.0
