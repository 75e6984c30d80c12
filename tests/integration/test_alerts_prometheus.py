"""Every alert rule loaded into a real Prometheus that scrapes a real exporter on this host.

The exporter watches a stand-in DTR node (tests.prom.watched_dtr_node: DTR's containers on a real
dockerd, its registry pushed to and pulled from, the DTR API stand-in, days of growth history).
Alert expressions are empty on a healthy node, which proves nothing; so each comparison is also
run in its ``bool`` form, which returns a 0/1 sample for every series the join matched: that
shows the selectors and the ``on(...)`` join meet real series.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support import ROOT, wait_for

RULES = ROOT / "alerts" / "dtr-sizing.rules.yml"


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def as_bool(expr: str) -> str:
    """The expression with each comparison made a ``bool`` one: it returns what it compared."""
    converted, count = re.subn(r"(?<=\s)(<|>|==)(?=\s)", r"\1 bool", expr)
    assert count, f"no comparison in {expr!r}"
    return converted


@pytest.fixture(scope="module")
def prom(dtr_stack):
    assert dtr_stack.prom.config["rule_files"] == [str(RULES.resolve())]
    return dtr_stack.ready()


def test_every_rule_loads_and_evaluates_without_error(prom):
    def evaluated():
        rules = [r for g in prom.rule_groups() for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
    rules = wait_for(evaluated, timeout=30, what="every rule evaluated once")
    recorded = [r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()} | set(recorded)
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_rule_expression_returns_data_on_a_real_exporter(prom, rule):
    result = prom.query(as_bool(rule["expr"]))  # raises QueryError if it does not parse
    assert result, f"{rule['alert']}: {as_bool(rule['expr'])} returned nothing"
    if "dtr_sizing_observed" in rule["expr"]:
        # the rule must agree with the exporter's own verdict, compared within one evaluation
        agree = prom.query(f"({as_bool(rule['expr'])}) + on(instance, job, check, severity) dtr_sizing_check_ok")
        assert len(agree) == len(result) and all(float(s["value"][1]) == 1 for s in agree), agree
