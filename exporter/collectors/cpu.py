"""CPUs: how many the host has and how many DTR may use, time by mode, pressure.

Emits dtr_cpu_cores (the CPUs DTR's processes may use), dtr_cpu_host_cores
(online CPUs), dtr_cpu_seconds_total{mode}, dtr_cpu_busy_ratio,
dtr_cpu_pressure_seconds_total{level}.

Usable CPUs describe DTR's host, never the exporter's own deployment: they are
the least of the online CPUs, the CPU quotas of the registry process's cgroups
(its own and every ancestor's) and its cpuset (exporter.cgroups), and the
HostConfig limits Docker reports for its container. The registry governs: it
is looked at first (Docker's registry container, then processes named by
``registry.process_names`` / ``registry.pids``), other DTR components only
when no registry is found. With no DTR process at all: the online CPUs.
``CpuReading.usable_source`` says what decided it; the cpu_cores check shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from .. import cgroups, procfs
from ..families import gauge, pressure
from ..processes import registry_pids
from ..window import Window
from . import NOTHING, Found, Spec

SPEC = Spec(True, 15, 10, "/proc/stat, /proc/pressure/cpu, the DTR processes' cgroups (cpu.max, cfs quota, cpuset)")

BUSY_WINDOW = 300.0  # seconds: long enough that a burst does not read as sustained
IDLE_MODES = ("idle", "iowait")


@dataclass(frozen=True)
class CpuReading:
    host_cpus: int
    usable_cpus: float  # the CPUs DTR's processes may use (their cgroups' quotas and cpusets)
    seconds_by_mode: dict[str, float]
    busy_ratio: float | None  # share of usable CPU time busy over the window
    busy_window_seconds: float
    pressure: dict[str, float] = field(default_factory=dict)
    usable_source: str = ""  # what decided usable_cpus: "cgroup of pid 812 (registry)", "online CPUs, ..."


class CpuCollector:
    name = "cpu"

    def __init__(self, ctx):
        self.procfs, self.sysfs = ctx.procfs, ctx.sysfs
        self.config = ctx.config
        self.window = Window(BUSY_WINDOW)

    def _candidates(self, found: Found) -> list[tuple[int | None, str, bool, float | None]]:
        """DTR processes, the registry first: (pid, who, known to Docker, HostConfig CPUs)."""
        docker = sorted(found.dtr_processes, key=lambda p: p.component != "registry")
        out = [(p.pid, f"{p.component}, container {p.container}", True, p.cpus)
               for p in docker if p.component == "registry"]
        seen = {p.pid for p in docker}
        named = registry_pids(self.procfs, self.config.registry_process_names, self.config.registry_pids)
        out += [(pid, "registry", False, None) for pid in named if pid not in seen]
        out += [(p.pid, f"{p.component}, container {p.container}", True, p.cpus)
                for p in docker if p.component != "registry"]
        return out

    def usable_cpus(self, host: int, found: Found) -> tuple[float, str]:
        """The CPUs DTR may use and what decided it."""
        for pid, who, from_docker, hostconfig in self._candidates(found):
            resolved, limit = cgroups.cpu_limit(self.procfs, self.sysfs, pid) if pid else (False, None)
            if not resolved and not from_docker:
                continue  # a process whose cgroup cannot be found says nothing: try the next one
            limits = [float(host), *(x for x in (limit, hostconfig) if x is not None)]
            where = f"cgroup of pid {pid}" if resolved else "Docker HostConfig"
            return float(min(limits)), f"{where} ({who})"
        return float(host), "online CPUs: no DTR process found"

    def host_cpus(self, stat_cpus: int) -> int:
        """Online CPUs: /sys/devices/system/cpu/online, else the cpuN lines of /proc/stat."""
        return cgroups.online_cpus(self.sysfs) or stat_cpus

    def collect(self, found: Found = NOTHING) -> CpuReading:
        modes, stat_cpus = procfs.parse_stat_cpu(procfs.read(self.procfs, "stat"))
        host = self.host_cpus(stat_cpus)
        usable, source = self.usable_cpus(host, found)
        total = sum(modes.values())
        idle = sum(modes[m] for m in IDLE_MODES)
        self.window.add(time.monotonic(), (total, total - idle))
        delta = self.window.delta()
        busy = delta[1][1] / delta[1][0] if delta and delta[1][0] > 0 else None
        psi = procfs.read_pressure(self.procfs, "cpu")  # {} without PSI or when reads fail
        return CpuReading(
            host_cpus=host,
            usable_cpus=usable,
            usable_source=source,
            seconds_by_mode=modes,
            busy_ratio=busy,
            busy_window_seconds=delta[0] if delta else 0.0,
            pressure={k: v for k, v in psi.items() if k == "some"},
        )


COLLECTOR = CpuCollector


def families(c: CpuReading) -> Iterator[Metric]:
    yield gauge("dtr_cpu_cores", "CPUs DTR's registry may use: online CPUs limited by its cgroups' quotas and cpuset "
                "(never the exporter's own).",
                c.usable_cpus)
    yield gauge("dtr_cpu_host_cores", "CPUs online on the host.", c.host_cpus)
    modes = CounterMetricFamily("dtr_cpu_seconds", "CPU time spent in each mode, all CPUs summed.",
                                labels=["mode"])
    for mode, seconds in c.seconds_by_mode.items():
        modes.add_metric([mode], seconds)
    yield modes
    if c.busy_ratio is not None:
        yield gauge("dtr_cpu_busy_ratio", "Share of CPU time not idle over the last window.", c.busy_ratio)
    if c.pressure:
        yield pressure("dtr_cpu_pressure_seconds", "Time runnable tasks waited for a CPU (PSI).", c.pressure)
