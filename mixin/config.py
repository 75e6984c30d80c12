"""Loads and checks mixin/config.yml, the one source of the alert rules and dashboards."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT = Path(__file__).resolve().parent / "config.yml"
SEVERITIES = ("warning", "critical")
DURATION = re.compile(r"(\d+[smhd])+")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ConfigError(ValueError):
    """One line: the key, what was wrong and what is accepted."""


@dataclass(frozen=True)
class Alert:
    for_: str
    keep_firing_for: str | None = None
    severity: str | None = None


@dataclass(frozen=True)
class Config:
    job: str
    runbook_url: str
    alerts: dict[str, Alert]
    cluster_label: str = ""
    path: Path = field(default=DEFAULT, compare=False)

    @property
    def node_labels(self) -> tuple[str, ...]:
        """The labels that tell one exporter from another: every join and aggregation keeps them."""
        return ((self.cluster_label,) if self.cluster_label else ()) + ("instance", "job")

    def runbook(self, alert: str) -> str:
        return self.runbook_url.format(anchor=alert.lower())

    def alert(self, name: str) -> Alert:
        if name not in self.alerts:
            raise ConfigError(f"{self.path.name}: alerts.{name} is missing: every alert needs its `for`")
        return self.alerts[name]


def _mapping(value: Any, key: str, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"config: {key} must be a mapping, got {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"config: {key}.{unknown[0]} is unknown; accepted: {', '.join(sorted(allowed))}")
    return value


def _duration(value: Any, key: str) -> str:
    if not isinstance(value, str) or not DURATION.fullmatch(value):
        raise ConfigError(f"config: {key} is {value!r}; accepted: a Prometheus duration such as 10m or 1h30m")
    return value


def _alert(name: str, value: Any) -> Alert:
    value = _mapping(value, f"alerts.{name}", {"for", "keep_firing_for", "severity"})
    if "for" not in value:
        raise ConfigError(f"config: alerts.{name}.for is missing; accepted: a Prometheus duration such as 10m")
    severity = value.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"config: alerts.{name}.severity is {severity!r}; accepted: {', '.join(SEVERITIES)}")
    keep = value.get("keep_firing_for")
    return Alert(_duration(value["for"], f"alerts.{name}.for"),
                 _duration(keep, f"alerts.{name}.keep_firing_for") if keep is not None else None, severity)


def load(path: Path = DEFAULT) -> Config:
    raw = _mapping(yaml.safe_load(path.read_text()) or {}, "the file", {"selector", "runbook_url", "alerts"})
    selector = _mapping(raw.get("selector", {}), "selector", {"job", "cluster_label"})
    job, cluster = selector.get("job"), selector.get("cluster_label", "")
    if not isinstance(job, str) or not job:
        raise ConfigError(f"config: selector.job is {job!r}; accepted: the scrape job name of the exporter")
    if cluster and not (isinstance(cluster, str) and LABEL.fullmatch(cluster)):
        raise ConfigError(f"config: selector.cluster_label is {cluster!r}; accepted: a label name or empty")
    url = raw.get("runbook_url")
    if not isinstance(url, str) or not re.match(r"https?://", url) or "{anchor}" not in url:
        raise ConfigError(f"config: runbook_url is {url!r}; accepted: an absolute http(s) URL containing {{anchor}}")
    alerts = _mapping(raw.get("alerts", {}), "alerts", set(raw.get("alerts") or {}))
    return Config(job, url, {name: _alert(name, v) for name, v in alerts.items()}, cluster or "", path)
