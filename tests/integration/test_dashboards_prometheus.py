"""Every dashboard query run against a real Prometheus scraping a real exporter on this host,
which watches a stand-in DTR node (tests.prom.watched_dtr_node: DTR's containers on a real
dockerd, the registry among them the real Distribution registry, pushed to and pulled from; the
DTR API stand-in; days of growth history): Prometheus scrapes the registry's own metrics too.

Grafana's variables are replaced the way Grafana would with "All" selected ($__rate_interval by
a window that holds a few 1 s scrapes). Each query must parse and return data.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support import ROOT

FILES = sorted((ROOT / "dashboards").glob("*.json"))
VARIABLES = {"$job": ".*", "$node": ".*", "$storage": ".*", "$__rate_interval": "5s"}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def queries() -> list[tuple[str, str]]:
    out = []
    for path in FILES:
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{path.stem}/{panel['id']} {panel['title']}/{t['refId']}", t["expr"]))
    return out


def absent(prom, expr: str) -> list[str]:
    """The metrics ``expr`` names that Prometheus has no series of: what a failure message needs."""
    return sorted(m for m in set(re.findall(r"\bdtr_[a-z0-9_]+", expr)) if not prom.query(f"count({m})"))


def variable_queries() -> list[tuple[str, str]]:
    return [(f"{p.stem}/${v['name']}", v["definition"]) for p in FILES
            for v in json.loads(p.read_text())["templating"]["list"] if "definition" in v]


@pytest.fixture(scope="module")
def prom(dtr_stack):
    return dtr_stack.ready()


@pytest.mark.parametrize("name,expr", queries(), ids=[q[0] for q in queries()])
def test_panel_query_returns_data(prom, name, expr):
    result = prom.query(substitute(expr))  # raises QueryError if Prometheus cannot parse it
    assert result, f"{name}: {substitute(expr)} returned nothing; no series of {absent(prom, expr)}"


@pytest.mark.parametrize("name,definition", variable_queries(), ids=[q[0] for q in variable_queries()])
def test_variable_query_finds_values(prom, name, definition):
    metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", definition).groups()
    values = prom.api(f"label/{label}/values", **{"match[]": substitute(metric)})
    assert values, f"{name}: {definition} found no values"
