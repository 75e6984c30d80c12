"""docs/prometheus.md: the Prometheus and Alertmanager configs work as written."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.support import ROOT, require

DOC = ROOT / "docs" / "prometheus.md"


def block(name: str) -> str:
    """The ```yaml block of the doc whose first line is ``# <name>``."""
    blocks = re.findall(r"```yaml\n(# (\S+)\n.*?)```", DOC.read_text(), re.S)
    return next(text for text, title in blocks if title == name)


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=60)


def test_scrape_config_passes_promtool_with_the_rules(tmp_path):
    (tmp_path / "prometheus.yml").write_text(block("prometheus.yml"))
    shutil.copy(ROOT / "alerts" / "dtr-sizing.rules.yml", tmp_path)
    result = run(require("promtool"), "check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


@pytest.fixture
def alertmanager_yml(tmp_path):
    (tmp_path / "alertmanager.yml").write_text(block("alertmanager.yml"))
    return tmp_path


def test_alertmanager_config_passes_amtool(alertmanager_yml):
    result = run(require("amtool"), "check-config", "alertmanager.yml", cwd=alertmanager_yml)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("labels,receiver", [
    (["alertname=DTRDiskSpaceLow", "severity=critical", "instance=n1:9742"], "registry-oncall"),
    (["alertname=DTRDiskSpaceLow", "severity=warning", "instance=n1:9742"], "registry-team"),
    (["alertname=DTRComponentDown", "severity=critical", "component=rethinkdb"], "registry-oncall"),
    (["alertname=SomethingElse", "severity=critical"], "registry-team"),
])
def test_alertmanager_routes_as_documented(alertmanager_yml, labels, receiver):
    result = run(require("amtool"), "config", "routes", "test", "--config.file", "alertmanager.yml", *labels,
                 cwd=alertmanager_yml)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_alert_is_in_the_docs_table():
    rules = re.findall(r"- alert: (\w+)", (ROOT / "alerts" / "dtr-sizing.rules.yml").read_text())
    table = set(re.findall(r"^\| `(DTR\w+)` \|", DOC.read_text(), re.M))
    assert set(rules) == table
