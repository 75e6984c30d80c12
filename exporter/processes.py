"""The registry's processes, found by name (``/proc/<pid>/comm``) or given as pids."""

from __future__ import annotations

import os
from pathlib import Path


def registry_pids(procfs: Path, names: list[str], pids: list[int]) -> list[int]:
    """Configured pids that exist, plus every process whose comm is one of ``names``."""
    # comm is cut to 15 characters by the kernel
    wanted = {n[:15] for n in names}
    found = {p for p in pids if (procfs / str(p)).is_dir()}
    try:
        entries = list(os.scandir(procfs))
    except OSError:
        return sorted(found)
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            comm = (procfs / entry.name / "comm").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue  # exited meanwhile
        if comm in wanted:
            found.add(int(entry.name))
    return sorted(found)


def host_namespace(procfs: Path, kind: str) -> str:
    """The host's namespace of ``kind`` (``net``, ``cgroup``): init's link, else this process's; "" if neither reads.

    Init's, because verdicts describe DTR's host: compared with the exporter's own, a
    host-network registry would look namespaced whenever the exporter runs in a bridged container.
    """
    for pid in ("1", "self"):
        try:
            return os.readlink(procfs / pid / "ns" / kind)
        except OSError:  # absent (a fixture tree, a private /proc) or not ours to read
            continue
    return ""


def io_counters(procfs: Path, pid: int) -> dict[str, int]:
    """``/proc/<pid>/io``: rchar, wchar, read_bytes, ... (same uid or CAP_SYS_PTRACE needed)."""
    out = {}
    for line in (procfs / str(pid) / "io").read_text(encoding="ascii").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = int(value)
    return out


def anon_bytes(procfs: Path, pid: int) -> int | None:
    """``RssAnon`` of ``/proc/<pid>/status`` (4.5+): the process's own memory, page cache excluded; None unknown."""
    try:
        text = (procfs / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("RssAnon:"):
            fields = line.split()
            return int(fields[1]) * 1024 if len(fields) >= 2 and fields[1].isdigit() else None
    return None
