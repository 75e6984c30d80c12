"""The alert and recording rules, built from mixin/config.yml.

Sizing alerts differ only in their check: one template (``sizing_alert``) compares the
exporter's observed value (dtr_sizing_observed) with the threshold it publishes
(dtr_sizing_threshold), so a threshold changed in the exporter's config reaches the alerts
without regenerating. One rule per check covers every severity configured for it: `group_right`
takes the `severity` label from the threshold series. A check that is unknown or not
applicable publishes no observed value and cannot fire.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, ConfigError

HEADROOM = "instance:dtr_sizing_headroom:ratio"


@dataclass(frozen=True)
class Sizing:
    """What one sizing alert says; the rest of the rule is the template's."""
    alert: str
    check: str
    minimum: bool  # observed must stay >= threshold (False: <=); exporter.sizing.Check.minimum
    summary: str
    observed: str  # the sentence's first half, with {{ $value }} humanised
    bound: str  # minimum, limit, horizon
    humanize: str  # the template function that shows the threshold ("" for a plain number)
    unit: str  # appended to the humanised threshold
    why: str  # the KB sentence (or reason) in parentheses
    fallback: str = ""  # a check that stands in while ``check`` is not measured (it publishes no observed value)
    passing: str = ""  # a check that must pass at the same severity for the alert to fire


SIZING = (
    Sizing("DTRMemoryBelowMinimum", "memory_total", True, "{i} has less RAM than the DTR sizing minimum.",
           "{i} has {{{{ $value | humanize1024 }}}}B of RAM", "minimum", "humanize1024", "B",
           "KB: 4GB is sufficient for smaller production installations"),
    Sizing("DTRDiskSpaceLow", "disk_free", True, "{i} is running out of disk space for DTR.",
           "{i} has {{{{ $value | humanize }}}}B available{{{{- range {smallest} | query }}}} on "
           "{{{{ .Labels.mountpoint }}}}{{{{ end }}}}", "minimum", "humanize", "B",
           "KB: no less than 20-30GB of space available"),
    Sizing("DTRTooFewCPUs", "cpu_cores", True, "{i} has fewer usable CPUs than the DTR sizing minimum.",
           "{i} may use {{{{ $value }}}} CPUs (after cgroup quota and cpuset)", "minimum", "", "",
           "KB: most modern dual core processors are likely to be sufficient"),
    Sizing("DTRCPUBusy", "cpu_busy", False, "{i} CPU has been busy for {for}.",
           "{i} CPU is {{{{ $value | humanizePercentage }}}} busy", "limit", "humanizePercentage", "",
           "KB: DTR is not very CPU intensive, so sustained high CPU is a signal"),
    Sizing("DTRPageCacheHitRatioLow", "page_cache_hit_ratio", True,
           "{i} serves too many registry reads from disk instead of page cache.",
           "{i} served {{{{ $value | humanizePercentage }}}} of registry reads from the page cache", "minimum",
           "humanizePercentage", "", "KB: with the local filesystem driver, a significant amount of RAM is "
           "recommended for Linux' storage caching"),
    # Fills even after garbage collection; while no garbage figure exists, whenever storage_forecast fails
    Sizing("DTRStorageFillingUp", "storage_forecast_after_gc", True,
           "{i} image storage will fill up soon at the measured growth.",
           "At the measured growth the image store of {i} falls below the critical free space in "
           "{{{{ $value | humanizeDuration }}}}{{{{ if eq $labels.check \"storage_forecast_after_gc\" }}}} even if "
           "garbage collection freed all it can{{{{ end }}}}", "horizon", "humanizeDuration", "",
           "KB: image storage scales linearly with the size and number of images", fallback="storage_forecast"),
    Sizing("DTRStorageNeedsGarbageCollection", "storage_forecast", True,
           "{i} image storage will fill up soon unless garbage is collected.",
           "At the measured growth the image store of {i} falls below the critical free space in "
           "{{{{ $value | humanizeDuration }}}}, but not within the horizon if garbage collection "
           "(--delete-untagged) freed what it can", "horizon", "humanizeDuration", "",
           "the store holds garbage: collect it before buying disk", passing="storage_forecast_after_gc"),
    Sizing("DTRStorageDeviceSaturated", "storage_io", False,
           "{i} image storage device has been saturated for {for}.",
           "The busiest disk under the image store of {i} is {{{{ $value | humanizePercentage }}}} busy", "limit",
           "humanizePercentage", "", "KB: the biggest bottleneck is how well the hardware serves large files"),
    Sizing("DTRInodesLow", "inodes_free", True, "{i} image store filesystem is running out of inodes.",
           "{{{{ $value | humanizePercentage }}}} of the inodes on the image store filesystem of {i} are free",
           "minimum", "humanizePercentage", "", "every blob takes one directory and one file"),
    Sizing("DTRPageCacheBelowHotSet", "memory_hot_set", True,
           "{i} cannot keep the registry's hot set in the page cache.",
           "{i} can give the registry {{{{ $value | humanize1024 }}}}B of page cache", "minimum (the hot set: "
           "24 h for warning, 1 h for critical)", "humanize1024", "B", "KB: with the local filesystem driver, "
           "a significant amount of RAM is recommended for Linux' storage caching"),
)
INSTANCE = "{{ $labels.instance }}"


def spoken(duration: str) -> str:
    """A `for` duration as the descriptions say it: 30m -> 30 minutes, 1h -> 1 hour."""
    words = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
    number, unit = int(duration[:-1]), words[duration[-1]]
    return f"{number} {unit}{'s' if number != 1 else ''}" if duration[:-1].isdigit() else duration


class Rules:
    def __init__(self, config: Config):
        self.config = config
        self.on = ", ".join(config.node_labels)

    def _timing(self, name: str, *, severity: bool = False) -> dict:
        alert = self.config.alert(name)
        out = {"for": alert.for_}
        if alert.keep_firing_for:
            out["keep_firing_for"] = alert.keep_firing_for
        if severity:
            out["labels"] = {"severity": alert.severity or "warning"}
        return out

    def _annotations(self, name: str, summary: str, description: str) -> dict:
        return {"annotations": {"summary": summary, "description": description,
                                "runbook_url": self.config.runbook(name)}}

    def _query(self, metric: str, *labels: str, around: str = "{}") -> str:
        """A template's printf building ``metric{<node labels>, labels...}`` (inside ``around``) from
        the alert's labels."""
        names = (*self.config.node_labels, *labels)
        selector = metric + "{" + ",".join(f"{n}=%q" for n in names) + "}"
        return f'printf "{around.format(selector)}" ' + " ".join(f"$labels.{n}" for n in names)

    def _failing(self, check: str, minimum: bool, passes: bool = False) -> str:
        """The observed value of ``check`` where it fails a threshold (``passes``: meets it), one series per
        severity."""
        op = (">=" if minimum else "<=") if passes else ("<" if minimum else ">")
        return (f'dtr_sizing_observed{{check="{check}"}}\n  {op} on({self.on}, check) group_right\n'
                f'dtr_sizing_threshold{{check="{check}"}}\n')

    def sizing_alert(self, s: Sizing) -> dict:
        """The one template of every per-check alert."""
        expr = self._failing(s.check, s.minimum)
        if s.fallback:
            expr += (f"  or\n(\n{self._failing(s.fallback, s.minimum)}  unless on({self.on})\n"
                     f'dtr_sizing_observed{{check="{s.check}"}}\n)\n')
        if s.passing:
            expr += f"  and on({self.on}, severity)\n(\n{self._failing(s.passing, s.minimum, passes=True)})\n"
        shown = f"value | {s.humanize}" if s.humanize else "value"
        threshold = (f"{{{{ with {self._query('dtr_sizing_threshold', 'check', 'severity')} | query }}}}"
                     f"{{{{ . | first | {shown} }}}}{s.unit}{{{{ end }}}}")
        smallest = self._query("dtr_filesystem_avail_bytes", around="bottomk(1, {})")
        observed = s.observed.format(i=INSTANCE, smallest=smallest)
        for_ = spoken(self.config.alert(s.alert).for_)
        description = f"{observed}; the {{{{ $labels.severity }}}} {s.bound} is {threshold} ({s.why})."
        return {"alert": s.alert, "expr": expr, **self._timing(s.alert),
                **self._annotations(s.alert, s.summary.format(i=INSTANCE, **{"for": for_}), description)}

    def other(self, name: str, expr: str, summary: str, description: str) -> dict:
        return {"alert": name, "expr": expr, **self._timing(name, severity=True),
                **self._annotations(name, summary, description.replace("{for_}", spoken(self.config.alert(name).for_)))}

    def exporter_alerts(self) -> list[dict]:
        job = self.config.job
        return [
            # Any target that served the exporter's build info in the last day, whatever its job
            # name, plus the configured job (catches a target never seen up).
            self.other("DTRSizingExporterDown",
                       f'up{{job="{job}"}} == 0\n  or\n(up == 0 and on({self.on}) '
                       f"present_over_time(dtr_exporter_build_info[1d]))\n",
                       "The DTR sizing exporter on {{ $labels.instance }} cannot be scraped.",
                       "Prometheus has not scraped {{ $labels.instance }} (job {{ $labels.job }}) for {for_}: "
                       "no sizing alert can fire for this node while it is down."),
            self.other("DTRSizingCollectorFailing", "dtr_exporter_collector_success == 0",
                       "Collector {{ $labels.collector }} of the DTR sizing exporter on {{ $labels.instance }} "
                       "is failing.",
                       "The {{ $labels.collector }} collector on {{ $labels.instance }} has failed for {for_}; the "
                       "checks it feeds read unknown and cannot alert. The exporter's status page (/) shows its "
                       "error."),
            # A failed or hung scan keeps the last completed scan's series, so its start time ages.
            self.other("DTRStorageScanStale",
                       f"time() - max by ({self.on}, storage) (dtr_storage_scan_timestamp_seconds) > 3 * 3600",
                       "The image store scan on {{ $labels.instance }} is stale.",
                       "The last completed scan of storage {{ $labels.storage }} on {{ $labels.instance }} started "
                       "{{ $value | humanizeDuration }} ago: storage size, growth and forecast are out of date."),
        ]

    def dtr_alerts(self) -> list[dict]:
        # Every node's exporter may read the same cluster status: one alert per replica, not per reporter.
        replica_by = ", ".join((*self.config.node_labels[:-2], "job", "replica_id"))  # the cluster, if any
        return [
            self.other("DTRComponentDown", "dtr_container_up == 0",
                       "DTR component {{ $labels.component }} is down on {{ $labels.instance }}.",
                       "The {{ $labels.component }} container of the DTR replica on {{ $labels.instance }} has "
                       "not been running for {for_}."),
            self.other("DTRAPIUnreachable", "dtr_api_up == 0",
                       "The DTR API is unreachable from {{ $labels.instance }}.",
                       "The exporter on {{ $labels.instance }} has not had a valid answer from the DTR API for "
                       "{for_}: replica health and the storage driver are unknown."),
            self.other("DTRReplicaUnhealthy", f"min by ({replica_by}) (dtr_replica_healthy) == 0",
                       "DTR replica {{ $labels.replica_id }} is unhealthy.",
                       "DTR's cluster status has reported replica {{ $labels.replica_id }} as not OK for {for_}: "
                       "the cluster has less redundancy, and a lost quorum stops DTR."),
        ]

    def records(self) -> list[dict]:
        """Margin of each check to each of its thresholds, as a share of the threshold: negative
        fails. The dashboards sort and colour by it instead of repeating the join per panel."""
        above = "|".join(s.check for s in SIZING if s.minimum)
        below = "|".join(s.check for s in SIZING if not s.minimum)
        by = f"on({self.on}, check)"
        share = f"/ on({self.on}, check, severity) dtr_sizing_threshold"
        expr = (f'(dtr_sizing_observed{{check=~"{above}"}} - {by} group_right dtr_sizing_threshold) {share}\n'
                f'  or\n(dtr_sizing_threshold - {by} group_left dtr_sizing_observed{{check=~"{below}"}}) {share}\n')
        return [{"record": HEADROOM, "expr": expr}]

    def groups(self) -> list[dict]:
        groups = [
            {"name": "dtr-sizing", "rules": [self.sizing_alert(s) for s in SIZING]},
            {"name": "dtr-sizing-exporter", "rules": self.exporter_alerts()},
            {"name": "dtr-components", "rules": self.dtr_alerts()},
            {"name": "dtr-sizing-records", "rules": self.records()},
        ]
        unknown = sorted(set(self.config.alerts) - {r["alert"] for g in groups for r in g["rules"] if "alert" in r})
        if unknown:
            raise ConfigError(f"config: alerts.{unknown[0]} is no alert of this mixin; accepted: the alert names "
                              "in alerts/dtr-sizing.rules.yml")
        return groups
