"""The /proc parsers on the recorded profiles, and on the malformed lines they must refuse."""

from __future__ import annotations

import pytest

from exporter import procfs
from tests.conftest import profile_dir


def proc(profile: str, *parts: str) -> str:
    return procfs.read(profile_dir(profile) / "proc", *parts)


@pytest.mark.parametrize("profile, mem_total_kb", [
    ("vm4g", 3984588), ("small", 2014084), ("large", 65842364), ("container", 16377420)])
def test_meminfo_is_bytes(profile, mem_total_kb):
    info = procfs.parse_meminfo(proc(profile, "meminfo"))
    assert info["MemTotal"] == mem_total_kb * 1024
    assert info["HugePages_Total"] == 0  # a count, not kB: not multiplied
    assert info["Hugepagesize"] == 2048 * 1024
    assert 0 < info["MemAvailable"] < info["MemTotal"]


def test_meminfo_vm4g_is_a_vm_sold_as_4gb():
    total = procfs.parse_meminfo(proc("vm4g", "meminfo"))["MemTotal"]
    assert 3.7 * 2**30 < total < 3.9 * 2**30


@pytest.mark.parametrize("line", ["MemTotal 123 kB", "MemTotal:", "MemTotal: 1 kB extra", "MemTotal: lots kB"])
def test_meminfo_refuses_malformed_lines(line):
    with pytest.raises(ValueError, match="meminfo"):
        procfs.parse_meminfo(f"MemFree: 1 kB\n{line}\n")


def test_meminfo_skips_blank_lines():
    assert procfs.parse_meminfo("\nMemTotal: 2 kB\n\n") == {"MemTotal": 2048}


def test_vmstat_keyvalue():
    vm = procfs.parse_keyvalue(proc("vm4g", "vmstat"))
    assert vm["pgmajfault"] == 20981
    assert vm["workingset_refault_file"] == 4410
    old = procfs.parse_keyvalue(proc("small", "vmstat"))
    assert "workingset_refault_file" not in old and old["workingset_refault"] == 190233


@pytest.mark.parametrize("line", ["pgmajfault", "pgmajfault 1 2", "pgmajfault x"])
def test_keyvalue_refuses_malformed_lines(line):
    with pytest.raises(ValueError):
        procfs.parse_keyvalue(line)


def test_pressure_totals_are_seconds():
    io = procfs.parse_pressure(proc("vm4g", "pressure", "io"))
    assert io == {"some": 31.337, "full": 27.01}
    cpu = procfs.parse_pressure(proc("large", "pressure", "cpu"))
    assert cpu["some"] == pytest.approx(4.412)


@pytest.mark.parametrize("text", ["half avg10=0.00 total=1", "some avg10=0.00 avg60=0.00", "some total=ten"])
def test_pressure_refuses_malformed_lines(text):
    with pytest.raises(ValueError):
        procfs.parse_pressure(text)


@pytest.mark.parametrize("profile, cpus", [("vm4g", 2), ("small", 1), ("large", 16), ("container", 8)])
def test_stat_counts_cpus_and_sums_modes(profile, cpus):
    text = proc(profile, "stat")
    modes, count = procfs.parse_stat_cpu(text)
    assert count == cpus
    assert list(modes) == list(procfs.CPU_MODES)
    first = text.splitlines()[0].split()
    assert modes["user"] == int(first[1]) / procfs.USER_HZ
    assert modes["steal"] == int(first[8]) / procfs.USER_HZ  # guest and guest_nice are left out


def test_stat_without_aggregate_line_is_an_error():
    with pytest.raises(ValueError, match="no aggregate"):
        procfs.parse_stat_cpu("cpu0 1 2 3 4 5\nintr 1\n")


@pytest.mark.parametrize("line", ["cpu 1 2 3", "cpu 1 2 x 4 5"])
def test_stat_refuses_malformed_cpu_lines(line):
    with pytest.raises(ValueError):
        procfs.parse_stat_cpu(line)


@pytest.mark.parametrize("text, count", [("0-3", 4), ("0-3,8,10-11\n", 7), ("5", 1), ("", 0), ("0,2,4", 3)])
def test_cpulist(text, count):
    assert procfs.parse_cpulist(text) == count


@pytest.mark.parametrize("text", ["3-1", "a-b", "0-"])
def test_cpulist_refuses_bad_ranges(text):
    with pytest.raises(ValueError):
        procfs.parse_cpulist(text)


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5)])
def test_cpu_max(text, cpus):
    assert procfs.parse_cpu_max(text) == cpus


@pytest.mark.parametrize("text", ["150000", "max", "a 100000", "150000 100000 1"])
def test_cpu_max_refuses_malformed(text):
    with pytest.raises(ValueError):
        procfs.parse_cpu_max(text)


def test_diskstats_bytes_and_busy_seconds():
    stats = procfs.parse_diskstats(proc("vm4g", "diskstats"))
    assert {"loop0", "vda", "vda1", "vda15"} <= set(stats)
    vda = stats["vda"]
    assert vda.read_bytes == 42511872 * 512
    assert vda.written_bytes == 18875904 * 512
    assert vda.io_seconds == 812.345


def test_diskstats_reads_the_older_18_field_format():
    stats = procfs.parse_diskstats(proc("small", "diskstats"))
    assert stats["sda"].io_seconds == 2203.311


@pytest.mark.parametrize("line", ["8 0 sda 1 2 3", "8 0 sda 1 2 x 4 5 6 7 8 9 10 11"])
def test_diskstats_refuses_malformed_lines(line):
    with pytest.raises(ValueError):
        procfs.parse_diskstats(line)


def test_mountinfo_fields_and_escapes():
    line = r"60 27 253:0 /sub /var/lib/my\040docker rw shared:30 master:2 - xfs /dev/mapper/vg0-docker rw"
    (mount,) = procfs.parse_mountinfo(line + "\n\n")
    assert mount == procfs.Mount(60, 27, "253:0", "/sub", "/var/lib/my docker", "xfs", "/dev/mapper/vg0-docker")


@pytest.mark.parametrize("profile, count", [("vm4g", 9), ("small", 9), ("large", 10), ("container", 9)])
def test_mountinfo_profiles(profile, count):
    mounts = procfs.parse_mountinfo(proc(profile, "self", "mountinfo"))
    assert len(mounts) == count
    assert all(m.mountpoint.startswith("/") for m in mounts)


@pytest.mark.parametrize("line", [
    "60 27 253:0 / /x rw xfs /dev/dm-0 rw",  # no " - " separator
    "60 27 253:0 / - xfs /dev/x",  # too few fields before it
    "x 27 8:1 / / rw - ext4 /dev/sda1 rw",  # mount id not a number
])
def test_mountinfo_refuses_malformed_lines(line):
    with pytest.raises(ValueError):
        procfs.parse_mountinfo(line)
