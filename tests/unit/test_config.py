"""Config file validation: every wrong input is one line naming the key and what is accepted."""

from __future__ import annotations

import pytest
import yaml

from exporter import config as cfg
from exporter.sizing import CHECKS


def load(tmp_path, text: str | bytes) -> cfg.Config:
    path = tmp_path / "config.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return cfg.load_file(path)


def error(tmp_path, text: str | bytes) -> str:
    with pytest.raises(cfg.ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "config.yml") + ": ")
    return message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_means_every_default(tmp_path, text):
    assert load(tmp_path, text) == cfg.Config()


def test_defaults_are_the_kb_thresholds():
    force = cfg.Config().thresholds_in_force()
    assert force["disk_free"] == {"warning": 30e9, "critical": 20e9}
    assert force["cpu_cores"] == {"warning": 2}
    assert force["memory_total"] == {"critical": pytest.approx(4 * 2**30 * 0.9)}
    assert set(force) == set(CHECKS)


def test_a_full_file_is_read(tmp_path):
    config = load(tmp_path, """
thresholds:
  memory_total: {critical: 8GiB, tolerance: 5%}
  disk_free: {warning: 100GB, critical: 50 GB}
  cpu_cores: 4
  storage_io: false
  inodes_free: {critical: false}
storage:
  path: /var/lib/docker/volumes/dtr-registry-0123456789ab/_data
web:
  listen_address: 127.0.0.1:9999
log: {level: debug, format: json}
collectors:
  cpu: {interval: 5s, timeout: 2s}
  diskio: {enabled: false}
""")
    force = config.thresholds_in_force()
    assert force["memory_total"] == {"critical": pytest.approx(8 * 2**30 * 0.95)}
    assert force["disk_free"] == {"warning": 100e9, "critical": 50e9}
    assert force["cpu_cores"] == {"warning": 4}
    assert "storage_io" not in force
    assert force["inodes_free"] == {"warning": 0.10}
    assert config.storage_path == "/var/lib/docker/volumes/dtr-registry-0123456789ab/_data"
    assert (config.listen_address, config.log_level, config.log_format) == ("127.0.0.1:9999", "debug", "json")
    assert (config.collectors["cpu"].interval, config.collectors["cpu"].timeout) == (5, 2)
    assert config.collectors["diskio"].enabled is False


@pytest.mark.parametrize("text, expected", [
    ("threshold: {}\n", "threshold: unknown key (did you mean thresholds?)"),
    ("web:\n  listen_adress: :9742\n", "web.listen_adress: unknown key (did you mean listen_address?)"),
    ("thresholds:\n  memory_totl: 4GB\n", "thresholds.memory_totl: unknown key (did you mean memory_total?)"),
    ("thresholds:\n  disk_free: {warn: 30GB}\n", "thresholds.disk_free.warn: unknown key (did you mean warning?)"),
    ("collectors:\n  memroy: {enabled: true}\n", "collectors.memroy: unknown key (did you mean memory?)"),
    ("collectors:\n  cpu: {intervall: 5s}\n", "collectors.cpu.intervall: unknown key (did you mean interval?)"),
])
def test_unknown_keys_are_named_with_a_suggestion_and_the_accepted_keys(tmp_path, text, expected):
    message = error(tmp_path, text)
    assert expected in message
    assert "; accepted: " in message


@pytest.mark.parametrize("setting", cfg.SETTINGS, ids=lambda s: s.key)
def test_every_setting_refuses_a_wrong_type(tmp_path, setting):
    message = error(tmp_path, f"{setting.section}:\n  {setting.name}: {{nested: mapping}}\n")
    assert f"{setting.key}: " in message


@pytest.mark.parametrize("setting", cfg.SETTINGS, ids=lambda s: s.key)
def test_every_setting_defaults_to_its_declared_value_which_its_parser_accepts(setting):
    assert getattr(cfg.Config(), setting.attr) == setting.default
    if setting.default is not None:
        assert setting.kind.parse(setting.default) == setting.default


def test_each_key_attribute_and_flag_is_declared_once():
    for what in ("key", "attr", "flag"):
        names = [getattr(s, what) for s in cfg.SETTINGS if getattr(s, what)]
        assert len(names) == len(set(names)), what
    assert not {s.section for s in cfg.SETTINGS} & {"collectors", "thresholds"}


@pytest.mark.parametrize("text, expected", [
    ("- a list\n", "top level: expected a mapping, got list"),
    ("web: 5\n", "web: expected a mapping, got int"),
    ("log:\n  level: loud\n", "log.level: 'loud' is not one of debug, info, warn, error"),
    ("web:\n  listen_address: localhost\n", "web.listen_address: 'localhost' is not host:port"),
    ("web:\n  listen_address: ':70000'\n", "is not host:port"),
    ("collectors:\n  cpu: {enabled: 'yes'}\n", "collectors.cpu.enabled: expected true or false"),
    ("collectors:\n  cpu: {interval: 0s}\n", "collectors.cpu.interval: '0s' is out of range: use 100ms to 1d"),
    ("collectors:\n  cpu: {timeout: soon}\n", "collectors.cpu.timeout: 'soon' is not a duration"),
    ("storage:\n  scan_rate: .nan\n", "storage.scan_rate: expected files per second, 0 for no limit"),
    ("storage:\n  scan_rate: .inf\n", "storage.scan_rate: expected files per second, 0 for no limit"),
])
def test_wrong_types_and_values(tmp_path, text, expected):
    assert expected in error(tmp_path, text)


@pytest.mark.parametrize("text, expected", [
    ("disk_free: {warning: -5GB}", "thresholds.disk_free.warning: '-5GB' is not a size"),
    ("cpu_cores: -1", "thresholds.cpu_cores.warning: -1 is not a count"),
    ("cpu_cores: two", "thresholds.cpu_cores.warning: 'two' is not a count"),
    ("cpu_cores: 10000", "absurdly large for cores"),
    ("memory_total: 2000000000000000000000", "absurdly large for bytes"),
    ("cpu_busy: 150%", "thresholds.cpu_busy.warning: '150%' is not a ratio"),
    ("memory_total: {tolerance: 60%}", "a tolerance of 50% or more makes the check meaningless"),
    ("disk_free: 25GB", "thresholds.disk_free: give one value per severity, e.g. {warning: ..., critical: ...}"),
])
def test_negative_absurd_and_ill_shaped_thresholds(tmp_path, text, expected):
    assert expected in error(tmp_path, f"thresholds:\n  {text}\n")


@pytest.mark.parametrize("text, expected", [
    ("disk_free: {warning: 10GB, critical: 20GB}",
     "thresholds.disk_free: warning (10 GB) must not be below critical (20 GB)"),
    ("disk_free: {warning: 15GB}", "warning (15 GB) must not be below critical (20 GB)"),  # against the default
    ("inodes_free: {warning: 5%, critical: 10%}", "warning (5.0%) must not be below critical (10.0%)"),
])
def test_warning_must_come_before_critical(tmp_path, text, expected):
    assert expected in error(tmp_path, f"thresholds:\n  {text}\n")


def test_equal_warning_and_critical_are_allowed(tmp_path):
    config = load(tmp_path, "thresholds:\n  disk_free: {warning: 20GB, critical: 20GB}\n")
    assert config.thresholds_in_force()["disk_free"] == {"warning": 20e9, "critical": 20e9}


@pytest.mark.parametrize("text, expected", [
    ("a: [1, 2\n", "line 2: invalid YAML: expected ',' or ']'"),
    ("a: b: c\n", "line 1: invalid YAML: mapping values are not allowed here"),
    ("\tweb: {}\n", "invalid YAML"),
])
def test_invalid_yaml(tmp_path, text, expected):
    assert expected in error(tmp_path, text)


def test_an_unreadable_file(tmp_path):
    with pytest.raises(cfg.ConfigError, match=r"missing.yml: cannot read the config file: No such file or directory$"):
        cfg.load_file(tmp_path / "missing.yml")
    with pytest.raises(cfg.ConfigError, match="cannot read the config file: Is a directory"):
        cfg.load_file(tmp_path)


def test_a_file_that_is_not_utf8(tmp_path):
    assert "cannot read the config file" in error(tmp_path, b"web: \xff\xfe\n")


@pytest.mark.parametrize("name", cfg.GENERATED)
def test_the_settings_and_collectors_tables_in_the_docs_are_the_declaration(name):
    from tests.support import ROOT
    parts = cfg.generated_parts((ROOT / name).read_text())
    assert set(parts) == set(cfg.GENERATED[name]), f"{name}: a generated table lost its markers"
    for source, render in cfg.GENERATED[name].items():
        assert parts[source] == render(), f"{name}: the table from {source} is stale: run make generate"


def test_the_configuration_doc_names_every_collector_and_check():
    from exporter.collectors import DEFAULTS
    from tests.support import ROOT
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f"collector {name}" for name in DEFAULTS if f"| `{name}` |" not in doc]
    missing += [f"check {name}" for name in CHECKS if f"| `{name}` |" not in doc]
    assert not missing, f"docs/configuration.md lacks {', '.join(missing)}"


def test_the_readme_and_the_doc_name_every_flag_and_the_readme_every_collector():
    from exporter.cli import build_parser
    from exporter.collectors import DEFAULTS
    from tests.support import ROOT
    readme = (ROOT / "README.md").read_text()
    doc = (ROOT / "docs" / "configuration.md").read_text()
    flags = {o for a in build_parser()._actions for o in a.option_strings
             if o.startswith("--") and "collector." not in o}
    missing = [name for name in DEFAULTS if f"| `{name}` |" not in readme]
    missing += [f"{flag} in {where}" for flag in sorted(flags) for where, text in (("README", readme), ("doc", doc))
                if f"`{flag}" not in text]
    assert not missing, f"README.md lacks {', '.join(missing)}"


def test_the_readme_example_file_is_the_defaults():
    """The README's full example loads, and equals the built-in defaults key for key."""
    import re

    from tests.support import ROOT
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration file", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    loaded = cfg.apply_mapping(cfg.Config(), yaml.safe_load(example))
    assert loaded == cfg.Config(thresholds=loaded.thresholds, collectors_chosen=loaded.collectors_chosen)
    assert loaded.thresholds_in_force() == cfg.Config().thresholds_in_force()
    named = {f"{s}.{k}" for s, keys in yaml.safe_load(example).items() if s in cfg.SECTIONS for k in keys}
    commented = set(re.findall(r"^  # (\w+):", example, re.M))
    missing = [s.key for s in cfg.SETTINGS if s.key not in named and s.name not in commented]
    assert not missing, f"README example lacks {missing}"
