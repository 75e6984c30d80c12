"""The /proc parsers on the recorded profiles, and on malformed lines: each one dropped and counted,
never the whole file (real captures of other projects are in test_parsing_fixtures.py)."""

from __future__ import annotations

import pytest

from exporter import procfs
from tests.conftest import profile_dir


def proc(profile: str, *parts: str) -> str:
    return procfs.read(profile_dir(profile) / "proc", *parts)


@pytest.fixture
def errors() -> procfs.ParseErrors:
    return procfs.ParseErrors()


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


@pytest.mark.parametrize("line", [
    "MemTotal 123 kB", "MemTotal:", "MemTotal: lots kB",
    "MemTotal: 123",  # no unit: a count or pages, not bytes
    "MemTotal: 123 MB",  # a unit the kernel never writes: not guessed
])
def test_a_malformed_meminfo_line_is_dropped_and_counted(line, errors):
    assert procfs.parse_meminfo(f"MemFree: 1 kB\n{line}\nDirty: 2 kB\n", errors) == {"MemFree": 1024, "Dirty": 2048}
    assert errors.counts() == {"meminfo": 1}


def test_meminfo_ignores_a_token_after_the_unit(errors):
    info = procfs.parse_meminfo("MemTotal: 4 kB\nHugepagesize:    2048 kB extra\n", errors)
    assert info == {"MemTotal": 4096, "Hugepagesize": 2048 * 1024}
    assert errors.counts() == {}


def test_meminfo_hugepage_counts_are_the_only_unitless_values(errors):
    info = procfs.parse_meminfo("HugePages_Total:      12\nHugePages_Surp: 1\nShmemHugePages: 7\n", errors)
    assert info == {"HugePages_Total": 12, "HugePages_Surp": 1}
    assert errors.counts() == {"meminfo": 1}


def test_a_meminfo_without_one_readable_line_is_an_error_naming_it(errors):
    with pytest.raises(ValueError, match="meminfo: not one line could be read.*not a number"):
        procfs.parse_meminfo("MemTotal: lots kB\nwhat is this\n", errors)


def test_meminfo_skips_blank_lines():
    assert procfs.parse_meminfo("\nMemTotal: 2 kB\n\n") == {"MemTotal": 2048}


def test_vmstat_keyvalue():
    vm = procfs.parse_keyvalue(proc("vm4g", "vmstat"))
    assert vm["pgmajfault"] == 20981
    assert vm["workingset_refault_file"] == 4410
    old = procfs.parse_keyvalue(proc("small", "vmstat"))
    assert "workingset_refault_file" not in old and old["workingset_refault"] == 190233


@pytest.mark.parametrize("line", ["pgmajfault", "pgmajfault 1 2", "pgmajfault x"])
def test_a_malformed_vmstat_line_is_dropped_and_counted(line, errors):
    assert procfs.parse_keyvalue(f"pgfault 5\n{line}\n", "vmstat", errors) == {"pgfault": 5}
    assert errors.counts() == {"vmstat": 1}


def test_a_truncated_last_vmstat_line_is_ignored(errors):
    text = proc("vm4g", "vmstat")
    cut = text.rstrip("\n")
    cut = cut[:cut.rindex(" ")]  # the last line stops before its number
    vm = procfs.parse_keyvalue(cut, "vmstat", errors)
    assert vm["pgmajfault"] == 20981 and cut.rsplit("\n", 1)[1] not in vm
    assert errors.counts() == {"vmstat": 1}


def test_pressure_totals_are_seconds():
    io = procfs.parse_pressure(proc("vm4g", "pressure", "io"))
    assert io == {"some": 31.337, "full": 27.01}
    cpu = procfs.parse_pressure(proc("large", "pressure", "cpu"))
    assert cpu["some"] == pytest.approx(4.412)


def test_pressure_ignores_lines_it_does_not_know(errors):
    text = "some avg10=0.00 total=1000000\nhalf avg10=0.00 total=1\nfull avg10=0.00 total=2000000 new=3\n"
    assert procfs.parse_pressure(text, "pressure/cpu", errors) == {"some": 1.0, "full": 2.0}
    assert errors.counts() == {}


@pytest.mark.parametrize("line", ["some avg10=0.00 avg60=0.00", "some total=ten"])
def test_a_pressure_line_without_a_total_drops_that_line(line, errors):
    text = f"{line}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=5000000\n"
    assert procfs.parse_pressure(text, "pressure/io", errors) == {"full": 5.0}
    assert errors.counts() == {"pressure/io": 1}


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
    with pytest.raises(ValueError, match="no readable aggregate"):
        procfs.parse_stat_cpu("cpu0 1 2 3 4 5\nintr 1\n")


@pytest.mark.parametrize("line", ["cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"])
def test_stat_without_a_readable_aggregate_line_is_an_error(line, errors):
    with pytest.raises(ValueError, match="stat"):
        procfs.parse_stat_cpu(f"{line}\ncpu0 1 2 3 4 5 6 7 8\nintr 1\n", errors)
    assert errors.counts() == {"stat": 1}


def test_stat_lines_it_does_not_use_are_not_read(errors):
    modes, cpus = procfs.parse_stat_cpu("cpu 1 2 3 4 5 6 7 8 9 10\ncpu0 1 2\ncpufreq x\nintr 1 2\n", errors)
    assert (modes["steal"], cpus) == (0.08, 1)
    assert errors.counts() == {}


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


SDA = "   8       0 sda 153300 12 9811200 734437 380518 40 30441472 1101655 0 2203311 3304966"


def test_a_2_6_partition_line_of_7_fields_is_skipped_quietly(errors):
    stats = procfs.parse_diskstats(f"{SDA}\n   8    1 sda1 153125 9800000 380518 30441472\n", errors)
    assert set(stats) == {"sda"} and stats["sda"].io_seconds == 2203.311
    assert errors.counts() == {}


@pytest.mark.parametrize("line", ["8 0 sdb 1 2 3", "8 16 sdb 1 2 x 4 5 6 7 8 9 10 11"])
def test_a_malformed_diskstats_line_drops_that_disk_only(line, errors):
    assert set(procfs.parse_diskstats(f"{SDA}\n{line}\n", errors)) == {"sda"}
    assert errors.counts() == {"diskstats": 1}


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
    "61 27 8:3 / /srv/other rw,relatime shared:9 - ex",  # truncated
])
def test_a_malformed_mountinfo_line_is_skipped_and_counted(line, errors):
    root = "21 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"
    assert [m.mountpoint for m in procfs.parse_mountinfo(f"{root}\n{line}\n", errors)] == ["/"]
    assert errors.counts() == {"mountinfo": 1}


def test_a_bad_line_is_logged_once_per_file_and_counted_every_time(errors, caplog):
    for _ in range(3):
        procfs.parse_keyvalue("pgfault 1\npgmajfault\n", "vmstat", errors)
        procfs.parse_diskstats(f"{SDA}\n8 1 sda1 x\n", errors)
    assert errors.counts() == {"vmstat": 3, "diskstats": 3}
    skipped = [r for r in caplog.records if r.name == "exporter.procfs"]
    assert sorted(r.file for r in skipped) == ["diskstats", "vmstat"]
    assert skipped[0].line == "pgmajfault"


def test_parsers_count_in_the_process_wide_sink_by_default():
    before = procfs.PARSE_ERRORS.counts().get("vmstat", 0)
    procfs.parse_keyvalue("pgfault 1\ntruncat")
    assert procfs.PARSE_ERRORS.counts()["vmstat"] == before + 1


@pytest.mark.parametrize("make", [
    lambda p: p.mkdir(),  # IsADirectoryError
    lambda p: p.symlink_to(p),  # ELOOP: an OSError that is neither missing nor permission
    lambda p: p.symlink_to(p.parent / "gone"),  # FileNotFoundError
])
def test_read_optional_is_none_whatever_stops_the_read(tmp_path, make):
    (tmp_path / "pressure").mkdir()
    make(tmp_path / "pressure" / "io")
    assert procfs.read_optional(tmp_path, "pressure", "io") is None
    assert procfs.read_pressure(tmp_path, "io") == {}
