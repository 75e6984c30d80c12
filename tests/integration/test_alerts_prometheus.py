"""Every alert rule loaded into a real Prometheus that scrapes a real exporter on this host.

The exporter watches a real registry that has been pushed to and pulled from (tests.prom.watched_registry).
Alert expressions are empty on a healthy node, which proves nothing; so each comparison is also
run in its ``bool`` form, which returns a 0/1 sample for every series the join matched: that
shows the selectors and the ``on(...)`` join meet real series.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.prom import watched_registry
from tests.support import ROOT, wait_for

RULES = ROOT / "alerts" / "dtr-sizing.rules.yml"

# Alerts whose inputs this host cannot produce, each with the metric whose absence from the
# exporter's own /metrics is the reason. The test checks that the metric really is absent; once
# it appears (a collector lands, a DTR is present), the expression must return data.
EMPTY_HERE = {
    # the forecast needs growth history that a seconds-old exporter has not gathered
    "DTRStorageFillingUp": 'dtr_sizing_observed{check="storage_forecast"}',
    # no DTR replica on this host: the docker and dtr_api collectors are off
    "DTRComponentDown": "dtr_container_up",
    "DTRAPIUnreachable": "dtr_api_up",
    "DTRReplicaUnhealthy": "dtr_replica_healthy",
}


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def as_bool(expr: str) -> str:
    """The expression with each comparison made a ``bool`` one: it returns what it compared."""
    converted, count = re.subn(r"(?<=\s)(<|>|==)(?=\s)", r"\1 bool", expr)
    assert count, f"no comparison in {expr!r}"
    return converted


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with watched_registry(tmp_path_factory.mktemp("alerts-prometheus"), rule_files=[RULES]) as (_, exporter, prom):
        wait_for(lambda: prom.query('dtr_sizing_observed{check="inodes_free"}'), timeout=30,
                 what="inodes_free scraped")
        yield exporter, prom


def test_every_rule_loads_and_evaluates_without_error(stack):
    _, prom = stack

    def evaluated():
        rules = [r for g in prom.rule_groups() for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("20") for r in rules) else None
    rules = wait_for(evaluated, timeout=30, what="every rule evaluated once")
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_rule_expression_returns_data_on_a_real_exporter(stack, rule):
    exporter, prom = stack
    result = prom.query(as_bool(rule["expr"]))  # raises QueryError if it does not parse
    if rule["alert"] in EMPTY_HERE and not result:
        reason = EMPTY_HERE[rule["alert"]]
        # the target is up and scraped, so an empty answer means the exporter does not publish it
        assert prom.query(reason) == [], f"{reason} is scraped, so {rule['alert']} should return data"
        pytest.xfail(f"empty here, as EMPTY_HERE explains: {reason} is not published on this host")
    assert result, f"{rule['alert']}: {as_bool(rule['expr'])} returned nothing"
    if "dtr_sizing_observed" in rule["expr"]:
        # the rule must agree with the exporter's own verdict, compared within one evaluation
        agree = prom.query(f"({as_bool(rule['expr'])}) + on(instance, job, check, severity) dtr_sizing_check_ok")
        assert len(agree) == len(result) and all(float(s["value"][1]) == 1 for s in agree), agree
