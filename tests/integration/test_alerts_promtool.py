"""The alert rules under Debian's promtool: syntax, unit tests, and what every alert must carry."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support import ROOT, require

RULES = ROOT / "alerts" / "dtr-sizing.rules.yml"
UNIT_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def unit_test_cases() -> list[dict]:
    return [case for path in UNIT_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


def test_promtool_check_rules():
    result = subprocess.run([require("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    assert UNIT_TESTS, "no promtool unit tests in alerts/tests"
    result = subprocess.run([require("promtool"), "test", "rules", *map(str, UNIT_TESTS)],
                            capture_output=True, text=True, cwd=ROOT / "alerts" / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_carries_severity_summary_description_runbook(rule):
    # Sizing alerts take severity from the dtr_sizing_threshold series they join; the others set it.
    from_threshold = "group_right" in rule["expr"] and "dtr_sizing_threshold" in rule["expr"]
    assert "severity" in rule.get("labels", {}) or from_threshold
    assert rule.get("labels", {}).get("severity", "warning") in ("warning", "critical")
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    anchor = annotations["runbook_url"].split("#", 1)[1]
    assert anchor == rule["alert"].lower()
    headings = re.findall(r"^## (\S+)", RUNBOOKS.read_text(), re.M)
    assert rule["alert"] in headings, f"docs/runbooks.md has no '## {rule['alert']}' section"


@pytest.mark.parametrize("rule", [r for r in alert_rules() if "dtr_sizing_observed" in r["expr"]],
                         ids=lambda r: r["alert"])
def test_sizing_alert_compares_with_published_threshold_and_shows_both(rule):
    expr = rule["expr"]
    assert "dtr_sizing_threshold" in expr
    # no threshold number is repeated in a sizing rule: the only literals allowed are in the selectors
    assert not re.search(r"(?<![\w\"])\d", expr), f"a number in {expr!r}"
    description = rule["annotations"]["description"]
    assert "$value" in description and "dtr_sizing_threshold" in description


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fired, quiet = set(), set()
    for case in unit_test_cases():
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fired == set(), "alerts no unit test fires"
    assert names - quiet == set(), "alerts no unit test keeps quiet"


def test_exporter_restart_case_covers_every_alert():
    case = next(c for c in unit_test_cases() if "restart" in c["name"])
    assert {c["alertname"] for c in case["alert_rule_test"]} == {r["alert"] for r in alert_rules()}
    assert all(not c["exp_alerts"] for c in case["alert_rule_test"])
