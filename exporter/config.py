"""Configuration: the YAML file and the flags, merged into one ``Config``.

Every setting has one YAML key (``section.key``) and, where useful, a flag;
the flag wins. Anything wrong raises ``ConfigError`` with one line that names
the key, what was wrong and what is accepted.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from . import DEFAULT_PORT, units
from .collectors import DEFAULTS as COLLECTOR_DEFAULTS
from .sizing import CHECKS, MEMORY_TOLERANCE, SEVERITIES

LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
SHARED_SCAN = ("auto", "always", "never")


class ConfigError(Exception):
    """A configuration problem, said in one line."""


@dataclass
class CollectorSettings:
    enabled: bool
    interval: float
    timeout: float


@dataclass
class Config:
    listen_address: str = f":{DEFAULT_PORT}"
    web_config_file: str | None = None
    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"
    storage_path: str | None = None
    scan_rate: float = 0.0
    state_dir: str | None = None
    scan_shared: str = "auto"
    docker_host: str | None = None
    docker_data_root: str = "/var/lib/docker"
    dtr_url: str | None = None
    dtr_username: str | None = None
    dtr_password_file: str | None = None
    dtr_ca_file: str | None = None
    dtr_insecure: bool = False
    dtr_timeout: float = 5.0
    registry_process_names: list[str] = field(default_factory=lambda: ["registry", "docker-registry"])
    registry_pids: list[int] = field(default_factory=list)
    registry_metrics_url: str | None = None
    log_level: str = "info"
    log_format: str = "logfmt"
    collectors: dict[str, CollectorSettings] = field(default_factory=lambda: {
        name: CollectorSettings(on, interval, timeout)
        for name, (on, interval, timeout, _) in COLLECTOR_DEFAULTS.items()})
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    memory_tolerance: float = MEMORY_TOLERANCE
    collectors_chosen: set[str] = field(default_factory=set)  # enabled/disabled by the file, not by default

    def thresholds_in_force(self) -> dict[str, dict[str, float]]:
        """check -> severity -> threshold, memory tolerance applied."""
        out = {name: dict(spec.defaults) for name, spec in CHECKS.items()}
        for name, by_severity in self.thresholds.items():
            out[name] = dict(by_severity)
        out["memory_total"] = {s: v * (1 - self.memory_tolerance) for s, v in out["memory_total"].items()}
        return {name: by for name, by in out.items() if by}


# --- value parsers: each raises ValueError with what is accepted -------------

def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return parse


def _address(value: object) -> str:
    text = _str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port (e.g. :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT})")
    return text


def _interval(value: object) -> float:
    seconds = units.parse_duration(value)
    if not 0.1 <= seconds <= 86400:
        raise ValueError(f"{value!r} is out of range: use 100ms to 1d")
    return seconds


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("expected files per second, 0 for no limit")
    return float(value)


def _str_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a list of names")
    return value


def _pid_list(value: object) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError("expected a list of process ids")
    return value


# section -> key -> (Config attribute, parser)
SCHEMA: dict[str, dict[str, tuple[str, Callable[[object], Any]]]] = {
    "web": {"listen_address": ("listen_address", _address), "config_file": ("web_config_file", _str)},
    "paths": {"procfs": ("procfs", _str), "sysfs": ("sysfs", _str), "rootfs": ("rootfs", _str)},
    "storage": {"path": ("storage_path", _str), "scan_rate": ("scan_rate", _rate),
                "state_dir": ("state_dir", _str), "scan_shared": ("scan_shared", _choice(*SHARED_SCAN))},
    "docker": {"host": ("docker_host", _str), "data_root": ("docker_data_root", _str)},
    "dtr": {"url": ("dtr_url", _str), "username": ("dtr_username", _str),
            "password_file": ("dtr_password_file", _str), "ca_file": ("dtr_ca_file", _str),
            "insecure": ("dtr_insecure", _bool), "timeout": ("dtr_timeout", _interval)},
    "registry": {"process_names": ("registry_process_names", _str_list), "pids": ("registry_pids", _pid_list),
                 "metrics_url": ("registry_metrics_url", _str)},
    "log": {"level": ("log_level", _choice(*LOG_LEVELS)), "format": ("log_format", _choice(*LOG_FORMATS))},
}
TOP_LEVEL = (*SCHEMA, "collectors", "thresholds")
LIMITS = {"bytes": 2**60, "cores": 4096, "ratio": 1, "seconds": 10 * 365 * 86400}


def _unknown(key: str, where: str, accepted: Any) -> ConfigError:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(accepted), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{where}{key}: unknown key{hint}; accepted: {', '.join(accepted)}")


def _mapping(value: object, key: str, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key}: expected a mapping, got {type(value).__name__}")
    return value


def _thresholds(raw: object, where: str, config: Config) -> None:
    for name, value in _mapping(raw, "thresholds", where).items():
        key = f"thresholds.{name}"
        if name not in CHECKS:
            raise _unknown(key, where, CHECKS)
        spec = CHECKS[name]
        if value is False:
            config.thresholds[name] = {}
            continue
        if not isinstance(value, dict):
            if len(spec.defaults) > 1:
                raise ConfigError(f"{where}{key}: give one value per severity, e.g. "
                                  f"{{{', '.join(f'{s}: ...' for s in spec.defaults)}}}")
            value = {next(iter(spec.defaults)): value}
        accepted = (*SEVERITIES, "tolerance") if name == "memory_total" else SEVERITIES
        merged = dict(spec.defaults)
        for severity, item in value.items():
            if severity not in accepted:
                raise _unknown(f"{key}.{severity}", where, accepted)
            try:
                if severity == "tolerance":
                    config.memory_tolerance = units.parse_ratio(item)
                    if config.memory_tolerance >= 0.5:
                        raise ValueError("a tolerance of 50% or more makes the check meaningless")
                elif item is False:
                    merged.pop(severity, None)
                else:
                    parsed = spec.parse(item)
                    if parsed > LIMITS[spec.unit]:
                        raise ValueError(f"{item!r} is absurdly large for {spec.unit}")
                    merged[severity] = parsed
            except ValueError as err:
                raise ConfigError(f"{where}{key}.{severity}: {err}") from None
        warn, crit = merged.get("warning"), merged.get("critical")
        if warn is not None and crit is not None and (warn < crit if spec.minimum else warn > crit):
            order = "below" if spec.minimum else "above"
            raise ConfigError(f"{where}{key}: warning ({spec.show(warn)}) must not be {order} "
                              f"critical ({spec.show(crit)}); warning is the earlier signal")
        config.thresholds[name] = merged


def _collectors(raw: object, where: str, config: Config) -> None:
    for name, value in _mapping(raw, "collectors", where).items():
        if name not in COLLECTOR_DEFAULTS:
            raise _unknown(f"collectors.{name}", where, COLLECTOR_DEFAULTS)
        settings = config.collectors[name]
        for key, item in _mapping(value, f"collectors.{name}", where).items():
            parser = {"enabled": _bool, "interval": _interval, "timeout": _interval}.get(key)
            if parser is None:
                raise _unknown(f"collectors.{name}.{key}", where, ("enabled", "interval", "timeout"))
            try:
                setattr(settings, key, parser(item))
            except ValueError as err:
                raise ConfigError(f"{where}collectors.{name}.{key}: {err}") from None
            if key == "enabled":
                config.collectors_chosen.add(name)


def apply_mapping(config: Config, raw: object, where: str = "") -> Config:
    """Fold one parsed YAML document into ``config``."""
    for section, value in _mapping(raw, "top level", where).items():
        if section not in TOP_LEVEL:
            raise _unknown(str(section), where, TOP_LEVEL)
        if section == "thresholds":
            _thresholds(value, where, config)
        elif section == "collectors":
            _collectors(value, where, config)
        else:
            for key, item in _mapping(value, section, where).items():
                if key not in SCHEMA[section]:
                    raise _unknown(f"{section}.{key}", where, SCHEMA[section])
                attr, parser = SCHEMA[section][key]
                try:
                    setattr(config, attr, parser(item))
                except ValueError as err:
                    raise ConfigError(f"{where}{section}.{key}: {err}") from None
    return config


def load_file(path: str | Path, config: Config | None = None) -> Config:
    """Read a YAML config file into ``config`` (defaults when None)."""
    config = config or Config()
    where = f"{path}: "
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"{where}cannot read the config file: {reason}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}{at}invalid YAML: {problem}") from None
    return apply_mapping(config, raw, where)
