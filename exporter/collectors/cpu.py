"""CPUs: how many the host has and how many we may use, time by mode, pressure.

Emits dtr_cpu_cores (usable: cgroup quota and cpuset applied), dtr_cpu_host_cores,
dtr_cpu_seconds_total{mode}, dtr_cpu_busy_ratio, dtr_cpu_pressure_seconds_total{level}.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import procfs
from ..readings import CpuReading
from ..window import Window

BUSY_WINDOW = 300.0  # seconds: long enough that a burst does not read as sustained
IDLE_MODES = ("idle", "iowait")


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (FileNotFoundError, NotADirectoryError):
        return None


class CpuCollector:
    name = "cpu"

    def __init__(self, ctx):
        self.procfs, self.sysfs = ctx.procfs, ctx.sysfs
        self.window = Window(BUSY_WINDOW)

    def _cgroup_dirs(self) -> list[Path]:
        """The cgroup directories of this process, v2 unified and v1 cpu/cpuset."""
        base = self.sysfs / "fs" / "cgroup"
        text = _read_optional(self.procfs / "self" / "cgroup") or ""
        dirs = []
        for line in text.splitlines():
            _, controllers, path = line.split(":", 2)
            rel = path.lstrip("/")
            if controllers == "":
                dirs.append(base / rel)
            for name in controllers.split(","):
                if name in ("cpu", "cpuset"):
                    dirs.extend(d for d in (base / name / rel, base / "cpu,cpuacct" / rel) if d.is_dir())
        return dirs or [base]

    def usable_cpus(self, host: int) -> float:
        usable = float(host)
        for d in self._cgroup_dirs():
            quota_text = _read_optional(d / "cpu.max")
            if quota_text is not None and (limit := procfs.parse_cpu_max(quota_text)) is not None:
                usable = min(usable, limit)
            quota, period = _read_optional(d / "cpu.cfs_quota_us"), _read_optional(d / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                usable = min(usable, int(quota) / int(period))
            for name in ("cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"):
                cpus = _read_optional(d / name)
                if cpus and cpus.strip():
                    usable = min(usable, procfs.parse_cpulist(cpus))
                    break
        return usable

    def collect(self) -> CpuReading:
        modes, host = procfs.parse_stat_cpu(procfs.read(self.procfs, "stat"))
        total = sum(modes.values())
        idle = sum(modes[m] for m in IDLE_MODES)
        self.window.add(time.monotonic(), (total, total - idle))
        delta = self.window.delta()
        busy = delta[1][1] / delta[1][0] if delta and delta[1][0] > 0 else None
        try:
            pressure = procfs.parse_pressure(procfs.read(self.procfs, "pressure", "cpu"))
        except FileNotFoundError:
            pressure = {}
        return CpuReading(
            host_cpus=host,
            usable_cpus=self.usable_cpus(host),
            seconds_by_mode=modes,
            busy_ratio=busy,
            busy_window_seconds=delta[0] if delta else 0.0,
            pressure={k: v for k, v in pressure.items() if k == "some"},
        )


COLLECTOR = CpuCollector
