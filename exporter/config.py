"""Configuration: the YAML file and the flags, merged into one ``Config``.

Every setting is declared once, as a ``Setting`` in ``SETTINGS``: its YAML key
(``section.key``), the ``Config`` attribute, the kind of value, the default,
its flag if it has one, and its help and docs text. The YAML validation, the
flags, ``--help`` and the reference table in docs/configuration.md all come
from that list. The flag wins over the file. Anything wrong raises
``ConfigError`` with one line that names the key, what was wrong and what is
accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from . import DEFAULT_PORT, units
from .collectors import DEFAULTS as COLLECTOR_DEFAULTS
from .sizing import CHECKS, MEMORY_TOLERANCE, SEVERITIES


class ConfigError(Exception):
    """A configuration problem, said in one line."""


# --- value parsers: each raises ValueError with what is accepted -------------

def _str(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError("expected files per second, 0 for no limit")
    return float(value)


def _number_text(text: str) -> object:
    """Flag text to a number where it is one; otherwise the text, for the parser to refuse."""
    try:
        return float(text)
    except ValueError:
        return text


def _str_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a list of names")
    return value


def _top(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 1000 or value % 1:
        raise ValueError(f"{value!r} is not a count from 1 to 1000")
    return int(value)


def _pid_list(value: object) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError("expected a list of process ids")
    return value


@dataclass(frozen=True)
class Kind:
    """A kind of value: how YAML (and flag text) is parsed, and how docs and ``--help`` name it."""

    parse: Callable[[object], Any]  # raises ValueError saying what is accepted
    doc: str                        # the type column of the reference table
    metavar: str = "VALUE"
    from_text: Callable[[str], object] = str  # flag text to what ``parse`` takes


def choice(*choices: str) -> Kind:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return Kind(parse, ", ".join(f"`{c}`" for c in choices), "|".join(choices))


PATH = Kind(_str, "path", "PATH")
TEXT = Kind(_str, "string", "TEXT")
URL = Kind(_str, "URL", "URL")
ADDRESS = Kind(_address, "host:port", "HOST:PORT")
BOOL = Kind(_bool, "true/false")  # a flag of this kind takes no value: giving it means true
DURATION = Kind(_interval, "duration, 100ms-1d", "DURATION")
RATE = Kind(_rate, "number ≥ 0", "N", _number_text)
NAMES = Kind(_str_list, "list of names")
PIDS = Kind(_pid_list, "list of pids")
TOP = Kind(_top, "integer, 1-1000", "N", _number_text)


@dataclass(frozen=True)
class Setting:
    """One setting, declared once."""

    key: str           # section.key in the YAML file
    attr: str          # the Config attribute
    kind: Kind
    default: Any
    help: str          # --help, and the reference table unless ``doc`` says more
    flag: str | None = None
    doc: str | None = None    # the reference table's "meaning", Markdown
    shown: str | None = None  # the default as the table shows it, when the value alone does not say it

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        if isinstance(self.default, list):
            return f"`[{', '.join(map(str, self.default))}]`"
        if isinstance(self.default, float) and self.default.is_integer():
            return f"`{int(self.default)}`"
        return f"`{self.default}`"

    def flag_help(self) -> str:
        """The --help line: the short text and the default, without Markdown."""
        return f"{self.help} [default: {self.shown_default().replace('`', '')}]"


LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
SHARED_SCAN = ("auto", "always", "never")

SETTINGS: tuple[Setting, ...] = (
    Setting("web.listen_address", "listen_address", ADDRESS, f":{DEFAULT_PORT}", "host:port to listen on",
            flag="--web.listen-address", doc="where the HTTP server listens; port 1-65535",
            shown=f"`:{DEFAULT_PORT}` (all addresses)"),
    Setting("web.config_file", "web_config_file", PATH, None,
            "exporter-toolkit web config: TLS, basic auth, headers", flag="--web.config.file",
            doc="exporter-toolkit web config: TLS, client certificates, bcrypt basic auth, headers",
            shown="none: plain HTTP"),
    Setting("paths.procfs", "procfs", PATH, "/proc", "procfs mount point", flag="--path.procfs",
            doc="procfs to read; `/host/proc` in a container"),
    Setting("paths.sysfs", "sysfs", PATH, "/sys", "sysfs mount point", flag="--path.sysfs",
            doc="sysfs to read (block devices, cgroup limits)"),
    Setting("paths.rootfs", "rootfs", PATH, "/", "host root filesystem mount point", flag="--path.rootfs",
            doc="where the host's root is mounted; host paths such as `docker.data_root` are read under it, "
                "and removed again from reported mountpoints"),
    Setting("storage.path", "storage_path", PATH, None,
            "registry storage root: the directory holding docker/registry/v2", flag="--storage.path",
            doc="the registry's storage root, the directory holding `docker/registry/v2`, as this process sees it",
            shown="discovered from Docker (the DTR registry volume), else none"),
    Setting("storage.scan_rate", "scan_rate", RATE, 0.0, "files per second the storage walk may stat, 0 = no limit",
            flag="--storage.scan-rate", doc="files per second the background storage walk may stat",
            shown="`0` (no limit)"),
    Setting("storage.scan_concurrency", "scan_concurrency", TOP, 4,
            "prefix directories the storage walk reads at once, 1 = one at a time",
            flag="--storage.scan-concurrency",
            doc="how many directories the storage walk reads at once: metadata reads in flight on the store's "
                "disk, so a cold scan is not held to one at a time; the bound (with `storage.scan_rate`) keeps a "
                "scan from starving the registry of I/O ([storage](storage.md#incremental-rescans))"),
    Setting("storage.state_dir", "state_dir", PATH, None,
            "directory for the growth history that survives restarts and the scan's on-disk indexes",
            flag="--storage.state-dir",
            doc="directory for the growth history that survives restarts (one JSON file per store) and the "
                "caches kept out of memory: the storage scan's index (8 bytes a blob, at least a page for "
                "each of the 256 prefix files) and the garbage estimate's database (recreated at start, "
                "about 100 bytes a blob: 101 MB at a million), and beside each the digests created since its last "
                "pass (32 bytes each, emptied by the pass)",
            shown="none: history kept in memory, caches in a private temporary directory"),
    Setting("storage.scan_shared", "scan_shared", choice(*SHARED_SCAN), "auto",
            "walk a store on a network filesystem that other replicas may share", flag="--storage.scan-shared",
            doc="whether this replica walks a store on a network filesystem, which other replicas may share "
                "(a local store is always walked): `auto` walks it only on the lowest replica id the DTR API "
                "reports, or when no replica list is known; see [DTR](#dtr)"),
    Setting("garbage.top_repositories", "top_repositories", TOP, 20,
            "repositories listed by the bytes they use; the rest are summed as (other)",
            flag="--garbage.top-repositories",
            doc="how many repositories the `garbage` collector publishes by the bytes they use "
                "(`dtr_repository_bytes`); the rest are summed as `repository=\"(other)\"` ([garbage](garbage.md))"),
    Setting("docker.host", "docker_host", TEXT, None, "Docker Engine API address", flag="--docker.host",
            doc="the Docker Engine API: `unix:///path/to/docker.sock` or `tcp://host:port` (plain HTTP; "
                "mount the socket rather than expose TLS)", shown="`unix:///var/run/docker.sock`"),
    Setting("docker.data_root", "docker_data_root", PATH, "/var/lib/docker",
            "Docker's data root on the host, read under --path.rootfs", flag="--docker.data-root",
            doc="Docker's data root on the host, read under `paths.rootfs`; its filesystem (or its nearest "
                "existing parent's) is `role=\"docker\"`"),
    Setting("dtr.url", "dtr_url", URL, None, "DTR base URL, e.g. https://dtr.example.com", flag="--dtr.url",
            doc="DTR base URL; giving it turns the `dtr_api` collector on unless it is switched off explicitly"),
    Setting("dtr.username", "dtr_username", TEXT, None,
            "DTR user for the API (password from --dtr.password-file or DTR_PASSWORD)", flag="--dtr.username",
            doc="DTR user for the API"),
    Setting("dtr.password_file", "dtr_password_file", PATH, None, "file holding the DTR password or token",
            flag="--dtr.password-file", shown="none (`DTR_PASSWORD` from the environment)"),
    Setting("dtr.ca_file", "dtr_ca_file", PATH, None, "CA bundle that signs DTR's certificate",
            flag="--dtr.ca-file", shown="system CAs"),
    Setting("dtr.insecure", "dtr_insecure", BOOL, False, "do not verify DTR's TLS certificate (tests only)",
            flag="--dtr.insecure"),
    Setting("dtr.timeout", "dtr_timeout", DURATION, 5.0, "per-request timeout of DTR API calls", shown="`5s`"),
    Setting("registry.process_names", "registry_process_names", NAMES, ["registry", "docker-registry"],
            "registry processes found by `/proc/<pid>/comm` (first 15 characters), for page-cache and "
            "traffic figures"),
    Setting("registry.pids", "registry_pids", PIDS, [], "registry processes given by id, in addition to the names"),
    Setting("registry.metrics_url", "registry_metrics_url", URL, None,
            "the registry's own Prometheus endpoint (http.debug.prometheus), for its traffic",
            flag="--registry.metrics-url",
            doc="the registry's own Prometheus endpoint (`http.debug.prometheus`), for its traffic"),
    Setting("registry.log_path", "registry_log_path", PATH, None,
            "the registry's request log (file, or Docker json-file log), for the hot set", flag="--registry.log-path",
            doc="the registry's request log as this process sees it: a file Distribution writes (`text` or `json` "
                "formatter, access lines or not) or a Docker `json-file` log; it gives the exact hot set and the "
                "file hit ratio ([workload](workload.md))",
            shown="the DTR or plain registry container's json-file log, found through Docker; else none "
                  "(atime method)"),
    Setting("log.level", "log_level", choice(*LOG_LEVELS), "info", "least severe message logged (stderr)",
            flag="--log.level"),
    Setting("log.format", "log_format", choice(*LOG_FORMATS), "logfmt", "log line format", flag="--log.format"),
)
# section -> key -> Setting, for the file
SECTIONS: dict[str, dict[str, Setting]] = {
    section: {s.name: s for s in SETTINGS if s.section == section}
    for section in dict.fromkeys(s.section for s in SETTINGS)}
# The two sections keyed by name, not by a fixed key: collectors.NAME.{these} and thresholds.CHECK
COLLECTOR_KEYS: dict[str, tuple[Kind, str]] = {
    "enabled": (BOOL, "whether the collector runs"),
    "interval": (DURATION, "how often the collector runs in the background"),
    "timeout": (DURATION, "how long one run may take before it counts as failed"),
}
COLLECTOR_FLAGS = "`--collector.NAME`, `--no-collector.NAME`"  # made by the CLI from the collector names
TOP_LEVEL = (*SECTIONS, "collectors", "thresholds")
LIMITS = {"bytes": 2**60, "cores": 4096, "ratio": 1, "seconds": 10 * 365 * 86400}


@dataclass
class CollectorSettings:
    enabled: bool
    interval: float
    timeout: float


class _Thresholds:
    def thresholds_in_force(self) -> dict[str, dict[str, float]]:
        """check -> severity -> threshold, memory tolerance applied."""
        out = {name: dict(spec.defaults) for name, spec in CHECKS.items()}
        for name, by_severity in self.thresholds.items():
            out[name] = dict(by_severity)
        if "storage_forecast_after_gc" not in self.thresholds:  # the same horizons, unless set apart
            out["storage_forecast_after_gc"] = dict(out["storage_forecast"])
        out["memory_total"] = {s: v * (1 - self.memory_tolerance) for s, v in out["memory_total"].items()}
        return {name: by for name, by in out.items() if by}


def _default(setting: Setting) -> Any:
    if isinstance(setting.default, list):  # a fresh list per Config
        return field(default_factory=setting.default.copy)
    return field(default=setting.default)


# One attribute per Setting, with its declared default, plus the name-keyed sections.
Config = make_dataclass("Config", [
    *((s.attr, Any, _default(s)) for s in SETTINGS),
    ("collectors", dict[str, CollectorSettings], field(default_factory=lambda: {
        name: CollectorSettings(on, interval, timeout)
        for name, (on, interval, timeout, _) in COLLECTOR_DEFAULTS.items()})),
    ("thresholds", dict[str, dict[str, float]], field(default_factory=dict)),
    ("memory_tolerance", float, field(default=MEMORY_TOLERANCE)),
    ("collectors_chosen", set[str], field(default_factory=set)),  # enabled/disabled by the file, not by default
], bases=(_Thresholds,))
Config.__doc__ = "Every setting in force: the defaults, then the file, then the flags."
Config.__module__ = __name__  # make_dataclass would say "types" before Python 3.12


# --- the reference tables in docs/configuration.md and README.md -------------

def reference_table() -> str:
    """The Settings table of docs/configuration.md, in Markdown."""
    rows = [("section.key", "type", "default", "meaning", "flag"), ("---",) * 5]
    rows += [(f"`{s.key}`", s.kind.doc, s.shown_default(), s.doc or s.help, f"`{s.flag}`" if s.flag else "")
             for s in SETTINGS]
    rows += [(f"`collectors.NAME.{key}`", kind.doc, "see [Collectors](#collectors)", meaning,
              COLLECTOR_FLAGS if key == "enabled" else "") for key, (kind, meaning) in COLLECTOR_KEYS.items()]
    rows.append(("`thresholds.CHECK`", "per check", "see [Thresholds](#thresholds)", "the sizing checks", ""))
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


def flags_table() -> str:
    """The Flags table of README.md, in Markdown: every flag with its key and default."""
    rows = [("flag", "config key", "default"), ("---",) * 3]
    rows += [(f"`{s.flag}`", f"`{s.key}`", s.shown_default()) for s in SETTINGS if s.flag]
    rows.append((COLLECTOR_FLAGS, "`collectors.NAME.enabled`", "see Collectors"))
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


def _short(seconds: float) -> str:
    """A duration as it is written in the config file: 15s, 5m, 1h."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def collectors_table() -> str:
    """The collectors table of README.md and docs/configuration.md, from each collector's SPEC:
    a new collector module appears here without a docs edit."""
    rows = [("collector", "reads", "enabled", "interval", "timeout"), ("---",) * 5]
    rows += [(f"`{name}`", reads, "yes" if on else "no", _short(interval), _short(timeout))
             for name, (on, interval, timeout, reads) in COLLECTOR_DEFAULTS.items()]
    return "".join(f"| {' | '.join(row)} |\n" for row in rows)


# document -> what its marked parts are generated from -> the renderer
GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "docs/configuration.md": {"exporter/config.py": reference_table, "exporter/collectors": collectors_table},
    "README.md": {"exporter/config.py": flags_table, "exporter/collectors": collectors_table},
}
_MARKED = re.compile(r"(<!-- generated from (\S+): make docs -->\n)(.*?)(<!-- end generated -->)", re.S)


def generated_parts(text: str) -> dict[str, str]:
    """What sits between each pair of markers of a document, by the source its marker names."""
    return {m.group(2): m.group(3) for m in _MARKED.finditer(text)}


def write_docs(root: Path) -> None:
    """Rewrite the generated tables in place (``make generate``)."""
    for name, renderers in GENERATED.items():
        path = root / name
        text = path.read_text(encoding="utf-8")
        path.write_text(_MARKED.sub(lambda m: m.group(1) + renderers[m.group(2)]() + m.group(4), text),
                        encoding="utf-8")


# --- reading a file ------------------------------------------------------------

def _unknown(key: str, where: str, accepted: Any) -> ConfigError:
    import difflib  # here: only a mistyped key needs it
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(accepted), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{where}{key}: unknown key{hint}; accepted: {', '.join(accepted)}")


def mapping(value: object, key: str, where: str, accepted: Any = None) -> dict:
    """The YAML mapping at ``key`` ({} for an empty one); with ``accepted``, any other key is an
    error. Every YAML reader here (this file, the web config) says it the same way, in one line."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key or 'top level'}: expected a mapping, got {type(value).__name__}")
    for name in value if accepted is not None else ():
        if name not in accepted:
            raise _unknown(f"{key}.{name}" if key else str(name), where, accepted)
    return value


def _parsed(kind: Kind, value: object, key: str, where: str) -> Any:
    try:
        return kind.parse(value)
    except ValueError as err:
        raise ConfigError(f"{where}{key}: {err}") from None


def _thresholds(raw: object, where: str, config: Config) -> None:
    for name, value in mapping(raw, "thresholds", where).items():
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
        # a scaled check's severities are shares of different readings (24 h and 1 h hot sets): no order
        ordered = warn is not None and crit is not None and not spec.scaled
        if ordered and (warn < crit if spec.minimum else warn > crit):
            order = "below" if spec.minimum else "above"
            raise ConfigError(f"{where}{key}: warning ({spec.show(warn)}) must not be {order} "
                              f"critical ({spec.show(crit)}); warning is the earlier signal")
        config.thresholds[name] = merged


def _collectors(raw: object, where: str, config: Config) -> None:
    for name, value in mapping(raw, "collectors", where).items():
        if name not in COLLECTOR_DEFAULTS:
            raise _unknown(f"collectors.{name}", where, COLLECTOR_DEFAULTS)
        settings = config.collectors[name]
        for key, item in mapping(value, f"collectors.{name}", where).items():
            if key not in COLLECTOR_KEYS:
                raise _unknown(f"collectors.{name}.{key}", where, COLLECTOR_KEYS)
            setattr(settings, key, _parsed(COLLECTOR_KEYS[key][0], item, f"collectors.{name}.{key}", where))
            if key == "enabled":
                config.collectors_chosen.add(name)


def apply_mapping(config: Config, raw: object, where: str = "") -> Config:
    """Fold one parsed YAML document into ``config``."""
    for section, value in mapping(raw, "top level", where).items():
        if section not in TOP_LEVEL:
            raise _unknown(str(section), where, TOP_LEVEL)
        if section == "thresholds":
            _thresholds(value, where, config)
        elif section == "collectors":
            _collectors(value, where, config)
        else:
            for key, item in mapping(value, section, where).items():
                if key not in SECTIONS[section]:
                    raise _unknown(f"{section}.{key}", where, SECTIONS[section])
                setting = SECTIONS[section][key]
                setattr(config, setting.attr, _parsed(setting.kind, item, setting.key, where))
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
