"""docs/prometheus.md: the Prometheus and Alertmanager configs work as written."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import requests
import yaml

from tests.prom import Alertmanager, Webhook
from tests.support import ROOT, require, wait_for

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
    rules = len(re.findall(r"- (?:alert|record): ", (ROOT / "alerts" / "dtr-sizing.rules.yml").read_text()))
    assert f"SUCCESS: {rules} rules found" in result.stdout


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


def test_documented_inhibit_rules_hold_on_a_real_alertmanager(tmp_path):
    """The doc's routes and inhibit rules as written; only the receivers point at this test's webhook."""
    config = yaml.safe_load(block("alertmanager.yml"))
    config.pop("global")
    config["route"].update({"group_wait": "1s", "group_interval": "1s"})
    config["route"]["routes"][0]["group_wait"] = "1s"
    with Webhook() as webhook:
        for receiver in config["receivers"]:
            name = receiver["name"]
            receiver.clear()
            receiver.update({"name": name, "webhook_configs": [{"url": f"{webhook.url}?{name}"}]})
        with Alertmanager(tmp_path, config=config) as am:
            labels = {"alertname": "DTRDiskSpaceLow", "check": "disk_free", "instance": "n1:9742"}
            sent = [{"labels": {**labels, "severity": s}} for s in ("critical", "warning")]
            assert requests.post(am.url + "/api/v2/alerts", json=sent, timeout=5).ok

            def processed():
                states = {a["labels"]["severity"]: a["status"]["state"] for a in am.alerts()}
                return states if len(states) == 2 and "unprocessed" not in states.values() else None
            assert wait_for(processed, timeout=30, what="both alerts processed") == \
                {"critical": "active", "warning": "suppressed"}
            delivered = wait_for(webhook.alerts, timeout=30, what="a notification")
            assert {a["labels"]["severity"] for a in delivered} == {"critical"}
            assert {n["receiver"] for n in webhook.notifications} == {"registry-oncall"}
