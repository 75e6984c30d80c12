"""Parsers for /proc and /sys files: text in, plain values out.

Each ``parse_*`` takes the file's text and raises ``ValueError`` on a line it
cannot read, so a collector reports the file as broken instead of exporting
a wrong number. ``read`` resolves a path under an injected root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

USER_HZ = 100  # /proc/stat ticks; fixed at 100 on every Linux ABI the kernel exports
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size


def read(root: Path, *parts: str) -> str:
    # utf-8, not ascii: a mountpoint such as /srv/données must compare equal with the real path
    return root.joinpath(*parts).read_text(encoding="utf-8", errors="replace")


def _int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a number") from None


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes (kB values times 1024; HugePages_* stay counts)."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or len(fields) > 2:
            raise ValueError(f"meminfo: malformed line {line!r}")
        value = _int(fields[0], f"meminfo {key}")
        out[key.strip()] = value * 1024 if len(fields) == 2 and fields[1] == "kB" else value
    return out


def parse_keyvalue(text: str) -> dict[str, int]:
    """``/proc/vmstat`` style: ``name value`` per line."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(f"malformed line {line!r}")
        out[fields[0]] = _int(fields[1], fields[0])
    return out


def parse_pressure(text: str) -> dict[str, float]:
    """``/proc/pressure/*``: level (``some``/``full``) -> total stall seconds."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        values = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if fields[0] not in ("some", "full") or "total" not in values:
            raise ValueError(f"pressure: malformed line {line!r}")
        out[fields[0]] = _int(values["total"], "pressure total") / 1e6
    return out


CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def parse_stat_cpu(text: str) -> tuple[dict[str, float], int]:
    """``/proc/stat``: seconds by mode summed over CPUs, and the number of CPUs listed."""
    total: dict[str, float] | None = None
    cpus = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            continue
        if len(fields) < 5:
            raise ValueError(f"stat: malformed line {line!r}")
        if fields[0] == "cpu":
            ticks = [_int(f, "stat cpu") for f in fields[1:1 + len(CPU_MODES)]]
            # guest time is already counted in user and nice, so it is left out.
            total = {mode: t / USER_HZ for mode, t in zip(CPU_MODES, ticks)}
        else:
            cpus += 1
    if total is None:
        raise ValueError("stat: no aggregate cpu line")
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
    name: str
    read_bytes: int
    written_bytes: int
    io_seconds: float


def parse_diskstats(text: str) -> dict[str, DiskStat]:
    """``/proc/diskstats``: device name -> bytes read and written, time busy."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 14:
            raise ValueError(f"diskstats: malformed line {line!r}")
        name = fields[2]
        out[name] = DiskStat(
            name,
            _int(fields[5], "diskstats sectors read") * SECTOR_BYTES,
            _int(fields[9], "diskstats sectors written") * SECTOR_BYTES,
            _int(fields[12], "diskstats io ms") / 1000,
        )
    return out


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


def parse_mountinfo(text: str) -> list[Mount]:
    """``/proc/<pid>/mountinfo`` in mount order."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            raise ValueError(f"mountinfo: malformed line {line!r}")
        mounts.append(Mount(_int(fields[0], "mount id"), _int(fields[1], "parent id"), fields[2],
                            _unescape(fields[3]), _unescape(fields[4]), tail[0], _unescape(tail[1])))
    return mounts
