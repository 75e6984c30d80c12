"""How many CPUs a process may use, from its cgroups (every ancestor) and its cpuset.

``/proc/<pid>/cgroup`` names the process's cgroup in each hierarchy
(``0::/path`` for the v2 unified one, ``N:cpu,cpuacct:/path`` for v1). A
CPU limit set on any ancestor binds the process too, so every directory from
the process's cgroup up to the hierarchy's root is read: v2 ``cpu.max``, v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; the cpuset is the leaf's
``cpuset.cpus.effective`` (v2) or ``cpuset.effective_cpus`` / ``cpuset.cpus``
(v1), the least of them wins.

Cgroup namespaces: the paths in ``/proc/<pid>/cgroup`` are relative to the
READER's cgroup namespace. An exporter in a private one (Docker's default on
cgroup v2) sees a DTR container as ``0::/../docker-<id>.scope``. Its own
namespace root lies as many levels below the hierarchy's root as
``/proc/1/cgroup`` (the host's init, outside the namespace) has leading
``..``; a path with k leading ``..`` then lives under an ancestor of that
root at depth (that many - k), whose names are unknown from inside: it is
found by matching ``*/`` for each unknown level against the host's cgroup
tree under ``--path.sysfs``, and used only when exactly one directory
matches. With the host's /sys not mounted (only the container's own view), no
match is found and the caller falls back to Docker's HostConfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import procfs


@dataclass(frozen=True)
class Membership:
    hierarchy: str  # the hierarchy id: "0" for v2
    controllers: tuple[str, ...]  # () for v2
    path: str  # as /proc/<pid>/cgroup writes it: may begin with /..


def parse_proc_cgroup(text: str) -> list[Membership]:
    """``/proc/<pid>/cgroup`` lines ``id:controllers:path``; malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) == 3:
            out.append(Membership(fields[0], tuple(c for c in fields[1].split(",") if c), fields[2]))
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except OSError:  # absent, a directory, or unreadable: an optional source
        return None


def memberships(proc_root: Path, pid: int | str) -> list[Membership]:
    return parse_proc_cgroup(_read(proc_root / str(pid) / "cgroup") or "")


def _ups(path: str) -> tuple[int, list[str]]:
    """Leading ``..`` count and the rest of a cgroup path."""
    parts = [p for p in path.split("/") if p]
    ups = 0
    while ups < len(parts) and parts[ups] == "..":
        ups += 1
    return ups, parts[ups:]


def resolve(base: Path, path: str, namespace_depth: int) -> Path | None:
    """The directory of cgroup ``path`` (as a reader at ``namespace_depth`` sees it) under ``base``."""
    ups, rest = _ups(path)
    unknown = namespace_depth - ups
    if unknown < 0:
        return None
    if unknown == 0:
        found = base.joinpath(*rest)
        return found if found.is_dir() else None
    matches = [p for p in base.glob("/".join(["*"] * unknown + rest)) if p.is_dir()]
    return matches[0] if len(matches) == 1 else None


def _base_dir(sysfs: Path, m: Membership) -> Path | None:
    """Where hierarchy ``m`` is mounted under sysfs, if it carries cpu or cpuset."""
    root = sysfs / "fs" / "cgroup"
    if not m.controllers and m.hierarchy == "0":
        # v2 counts only when it is the whole of /sys/fs/cgroup (a hybrid host's "unified" has no controllers)
        return root if (root / "cgroup.controllers").is_file() else None
    if not {"cpu", "cpuset"} & set(m.controllers):
        return None
    # v1: "cpu,cpuacct" as mounted, or the per-controller name most distributions link to it
    return next((root / n for n in (",".join(m.controllers), *m.controllers) if (root / n).is_dir()), None)


def _ancestry(base: Path, leaf: Path) -> list[Path]:
    chain = [leaf]
    while chain[-1] != base and base in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _quota(d: Path) -> float | None:
    text = _read(d / "cpu.max")
    if text is not None:
        try:
            return procfs.parse_cpu_max(text)
        except ValueError:
            return None
    quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
    try:
        if quota and period and int(quota) > 0 and int(period) > 0:
            return int(quota) / int(period)
    except ValueError:
        pass
    return None


def _cpuset(d: Path) -> int | None:
    for name in ("cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"):
        text = _read(d / name)
        if text and text.strip():
            try:
                return procfs.parse_cpulist(text)
            except ValueError:
                return None
    return None


def namespace_depth(proc_root: Path, hierarchy: str) -> int:
    """How far below hierarchy's root the reader's cgroup namespace root is (0: the host's namespace)."""
    for m in memberships(proc_root, 1):
        if m.hierarchy == hierarchy:
            return _ups(m.path)[0]
    return 0


def cpu_limit(proc_root: Path, sysfs: Path, pid: int) -> tuple[bool, float | None]:
    """(resolved, CPUs allowed): resolved is False when no cgroup directory of ``pid`` was found."""
    resolved, limit = False, None
    for m in memberships(proc_root, pid):
        base = _base_dir(sysfs, m)
        leaf = resolve(base, m.path, namespace_depth(proc_root, m.hierarchy)) if base else None
        if leaf is None:
            continue
        resolved = True
        chain = _ancestry(base, leaf)
        values = [q for d in chain if (q := _quota(d)) is not None]
        # the nearest cpuset that says something: a child's cpus always lie within its parent's
        cpuset = next((c for d in chain if (c := _cpuset(d)) is not None), None)
        values += [cpuset] if cpuset is not None else []
        limit = min([v for v in (limit, *values) if v is not None], default=None)
    return resolved, limit


def online_cpus(sysfs: Path) -> int | None:
    """``/sys/devices/system/cpu/online`` (``0-3``), None when absent or unreadable."""
    text = _read(sysfs / "devices" / "system" / "cpu" / "online")
    try:
        return procfs.parse_cpulist(text) if text and text.strip() else None
    except ValueError:
        return None


# --- memory: how much page cache a cgroup's limits leave the registry -------------------------

NO_MEMORY_LIMIT = 1 << 62  # v1 writes "no limit" as PAGE_COUNTER_MAX pages: 9223372036854771712


def memory_headroom(limit_text: str | None, stat_text: str | None) -> int | None:
    """A cgroup's memory limit minus its anonymous memory: the page cache it can hold; None: no limit.

    ``limit_text`` is v2 ``memory.max`` or v1 ``memory.limit_in_bytes``; ``stat_text`` is that
    cgroup's ``memory.stat``, whose ``anon`` (v2) or ``total_rss`` (v1, this cgroup and its
    children; ``rss`` where hierarchy accounting is off) counts the anonymous memory charged there.
    """
    value = (limit_text or "").strip()
    if not value or value == "max" or not value.isdigit() or int(value) >= NO_MEMORY_LIMIT:
        return None
    stat = dict(line.split(None, 1) for line in (stat_text or "").splitlines() if len(line.split()) == 2)
    anon = stat.get("anon") or stat.get("total_rss") or stat.get("rss") or "0"
    return max(0, int(value) - int(anon)) if anon.strip().isdigit() else int(value)


def _memory_base(sysfs: Path, m: Membership) -> Path | None:
    root = sysfs / "fs" / "cgroup"
    if not m.controllers and m.hierarchy == "0":
        return root if (root / "cgroup.controllers").is_file() else None
    if "memory" not in m.controllers:
        return None
    return next((root / n for n in (",".join(m.controllers), "memory") if (root / n).is_dir()), None)


def memory_room(proc_root: Path, sysfs: Path, pid: int) -> int | None:
    """The least headroom of ``pid``'s memory cgroup and its ancestors (each limit binds); None: no limit."""
    rooms = []
    for m in memberships(proc_root, pid):
        base = _memory_base(sysfs, m)
        leaf = resolve(base, m.path, namespace_depth(proc_root, m.hierarchy)) if base else None
        for d in _ancestry(base, leaf) if leaf else ():
            limits = [_read(d / "memory.max"), _read(d / "memory.high"), _read(d / "memory.limit_in_bytes")]
            stat = _read(d / "memory.stat")
            rooms += [r for text in limits if (r := memory_headroom(text, stat)) is not None]
    return min(rooms, default=None)
