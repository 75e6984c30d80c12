"""Parsers for /proc and /sys files: text in, plain values out.

Parsing degrades by the line, not by the file: a line of a format we do not
know is ignored, a line we should know but cannot read drops only what it
carries and is counted in ``PARSE_ERRORS`` under the file's name (published
as ``dtr_exporter_parse_errors_total{file}``). A file that has lines but not
one of them readable is not the file we expect: that raises ``ValueError``
naming it. ``read`` resolves a path under an injected root; ``read_optional``
is for sources an older or differently built kernel may lack or refuse.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

USER_HZ = 100  # /proc/stat ticks; fixed at 100 on every Linux ABI the kernel exports
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size

log = logging.getLogger(__name__)
T = TypeVar("T")


class ParseErrors:
    """Lines that could not be read, counted by file; the first of each file is logged.

    Thread-safe: collectors run on their own threads. Logged once per file because
    the same bad line comes back on every run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def note(self, file: str, line: str, why: str) -> None:
        with self._lock:
            first = file not in self._counts
            self._counts[file] = self._counts.get(file, 0) + 1
        if first:
            log.warning("line skipped: cannot parse it (further ones in this file are only counted)",
                        extra={"file": file, "line": line[:200], "err": why})

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


PARSE_ERRORS = ParseErrors()  # the process's own, like process_* metrics: one per exporter


def read(root: Path, *parts: str) -> str:
    # utf-8, not ascii: a mountpoint such as /srv/données must compare equal with the real path
    return root.joinpath(*parts).read_text(encoding="utf-8", errors="replace")


def read_optional(root: Path, *parts: str) -> str | None:
    """The file's text, or None when it cannot be read for any reason: missing, a directory,
    permission denied, or EOPNOTSUPP (RHEL 8 lists /proc/pressure/* but refuses reads unless psi=1)."""
    try:
        return read(root, *parts)
    except OSError:
        return None


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def _lines(text: str, file: str, parse: Callable[[str], T | None], errors: ParseErrors | None) -> Iterator[T]:
    """``parse`` of every non-blank line; None from it means a line of no interest. A line it
    refuses (ValueError) is noted and skipped; if no line at all could be read, ValueError."""
    errors = errors or PARSE_ERRORS
    understood, first_error = False, None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = parse(line)
        except ValueError as err:
            errors.note(file, line, str(err))
            first_error = first_error or f"{line[:80]!r}: {err}"
            continue
        understood = True
        if item is not None:
            yield item
    if first_error and not understood:
        raise ValueError(f"{file}: not one line could be read (first: {first_error})")


# meminfo keys that are counts, not kB; every other value must say kB to be read as bytes
MEMINFO_COUNTS = ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")


def _meminfo_line(line: str) -> tuple[str, int]:
    key, sep, rest = line.partition(":")
    fields = rest.split()  # a token after the unit is not ours to read: ignored
    if not sep or not fields:
        raise ValueError("not 'Key: value [kB]'")
    key = key.strip()
    value = _int(fields[0], key)
    unit = fields[1] if len(fields) > 1 else None
    if unit == "kB":
        return key, value * 1024
    if unit is None and key in MEMINFO_COUNTS:
        return key, value
    raise ValueError(f"{key}: unit {unit or 'missing'}, so the value is not known to be bytes")


def parse_meminfo(text: str, errors: ParseErrors | None = None) -> dict[str, int]:
    """``/proc/meminfo`` as bytes (kB values times 1024; HugePages_* stay counts)."""
    return dict(_lines(text, "meminfo", _meminfo_line, errors))


def parse_keyvalue(text: str, file: str = "vmstat", errors: ParseErrors | None = None) -> dict[str, int]:
    """``/proc/vmstat`` style: ``name value`` per line."""
    def line_(line: str) -> tuple[str, int]:
        fields = line.split()
        if len(fields) != 2:
            raise ValueError("not 'name value'")
        return fields[0], _int(fields[1], fields[0])
    return dict(_lines(text, file, line_, errors))


def parse_pressure(text: str, file: str = "pressure", errors: ParseErrors | None = None) -> dict[str, float]:
    """``/proc/pressure/*``: level (``some``/``full``) -> total stall seconds; other lines ignored."""
    def line_(line: str) -> tuple[str, float] | None:
        fields = line.split()
        if fields[0] not in ("some", "full"):
            return None
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if "total" not in values:
            raise ValueError(f"{fields[0]} without total=")
        return fields[0], _int(values["total"], "pressure total") / 1e6
    return dict(_lines(text, file, line_, errors))


def read_pressure(root: Path, resource: str, errors: ParseErrors | None = None) -> dict[str, float]:
    """PSI of ``resource`` (cpu, memory, io); {} where the kernel has none or will not tell
    (Linux before 4.20, CONFIG_PSI=n, psi=0, RHEL 8's default)."""
    text = read_optional(root, "pressure", resource)
    return {} if text is None else parse_pressure(text, f"pressure/{resource}", errors)


CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _stat_line(line: str) -> tuple[str, dict[str, float] | None] | None:
    name = line.split(None, 1)[0]
    if name == "cpu":
        fields = line.split()[1:]
        if len(fields) < len(CPU_MODES):  # steal came with 2.6.11: every kernel we meet has it
            raise ValueError(f"aggregate cpu line has {len(fields)} fields, {len(CPU_MODES)} needed")
        ticks = [_int(f, "stat cpu") for f in fields[:len(CPU_MODES)]]
        # guest time is already counted in user and nice, so it is left out.
        return name, {mode: t / USER_HZ for mode, t in zip(CPU_MODES, ticks)}
    if name.startswith("cpu") and name[3:].isdigit():
        return name, None  # only counted: its ticks are in the aggregate line
    return None


def parse_stat_cpu(text: str, errors: ParseErrors | None = None) -> tuple[dict[str, float], int]:
    """``/proc/stat``: seconds by mode summed over CPUs, and the number of CPUs listed."""
    total: dict[str, float] | None = None
    cpus = 0
    for _, modes in _lines(text, "stat", _stat_line, errors):
        if modes is None:
            cpus += 1
        else:
            total = modes
    if total is None:
        raise ValueError("stat: no readable aggregate cpu line")
    return total, cpus


def parse_cpulist(text: str) -> int:
    """Number of CPUs in a list such as ``0-3,8,10-11``."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, sep, high = part.partition("-")
        first = _int(low, "cpu list")
        last = _int(high, "cpu list") if sep else first
        if last < first:
            raise ValueError(f"cpu list: bad range {part!r}")
        count += last - first + 1
    return count


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``max 100000`` or ``150000 100000``): CPUs allowed, None for no limit."""
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"cpu.max: malformed {text.strip()!r}")
    if fields[0] == "max":
        return None
    return _int(fields[0], "cpu.max quota") / _int(fields[1], "cpu.max period")


@dataclass(frozen=True)
class DiskStat:
    name: str  # as the kernel names it here: cciss/c0d0 (sysfs writes cciss!c0d0)
    read_bytes: int
    written_bytes: int
    io_seconds: float


DISKSTATS_PARTITION_2_6 = 7  # "8 1 sda1 reads sectors writes sectors": no time busy


def _diskstats_line(line: str) -> DiskStat | None:
    fields = line.split()
    if len(fields) == DISKSTATS_PARTITION_2_6:
        return None  # a 2.6 partition line holds no io time, and a disk's own line is what we use
    # 14 fields up to 4.17, 18 from 4.18 (discards), 20 from 5.5 (flushes): the first 14 mean the same
    if len(fields) < 14:
        raise ValueError(f"{len(fields)} fields, 14 or more expected")
    return DiskStat(
        fields[2],
        _int(fields[5], "diskstats sectors read") * SECTOR_BYTES,
        _int(fields[9], "diskstats sectors written") * SECTOR_BYTES,
        _int(fields[12], "diskstats io ms") / 1000,
    )


def parse_diskstats(text: str, errors: ParseErrors | None = None) -> dict[str, DiskStat]:
    """``/proc/diskstats``: device name -> bytes read and written, time busy."""
    return {s.name: s for s in _lines(text, "diskstats", _diskstats_line, errors)}


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    dev: str  # major:minor
    root: str  # the path inside the filesystem that is mounted here (bind mounts)
    mountpoint: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal ``\\040``."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _mountinfo_line(line: str) -> Mount:
    left, sep, right = line.partition(" - ")
    fields, tail = left.split(), right.split()
    if not sep or len(fields) < 5 or len(tail) < 2:
        raise ValueError("not 'id parent major:minor root mountpoint ... - fstype source ...'")
    return Mount(_int(fields[0], "mount id"), _int(fields[1], "parent id"), fields[2],
                 _unescape(fields[3]), _unescape(fields[4]), tail[0], _unescape(tail[1]))


def parse_mountinfo(text: str, errors: ParseErrors | None = None) -> list[Mount]:
    """``/proc/<pid>/mountinfo`` in mount order."""
    return list(_lines(text, "mountinfo", _mountinfo_line, errors))
