"""Every dashboard query run against a real Prometheus scraping a real exporter on this host,
which watches a real Distribution registry (Debian's docker-registry) that has been pushed to and
pulled from; Prometheus scrapes the registry's own metrics too.

Grafana's variables are replaced the way Grafana would with "All" selected ($__rate_interval by
a window that holds a few 1 s scrapes). Each query must parse and return data, unless every
series it could return comes from a metric in EMPTY_HERE, which says why this host has none;
the test checks that the metric really is absent.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.prom import watched_registry
from tests.support import ROOT

FILES = sorted((ROOT / "dashboards").glob("*.json"))
VARIABLES = {"$job": ".*", "$node": ".*", "$storage": ".*", "$__rate_interval": "5s"}

EMPTY_HERE = {
    # growth and forecast need a history of hours, the exporter here is seconds old
    "dtr_storage_growth_bytes_per_second": "growth needs more history than a test has",
    "dtr_storage_full_forecast_seconds": "the forecast needs more history than a test has",
    # no DTR replica on this host: the docker and dtr_api collectors are off
    "dtr_api_up": "no DTR API here", "dtr_info": "no DTR replica here", "dtr_replica_healthy": "no DTR API here",
    "dtr_container_up": "no DTR containers here", "dtr_container_memory_bytes": "no DTR containers here",
    "dtr_container_cpu_seconds_total": "no DTR containers here",
    "dtr_container_network_receive_bytes_total": "no DTR containers here",
    "dtr_container_network_transmit_bytes_total": "no DTR containers here",
}

# sizing checks whose verdict is unknown here, so dtr_sizing_observed has no series for them
UNKNOWN_CHECKS = {
    "storage_forecast": "the forecast needs more history than a test has",
}


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


def variable_queries() -> list[tuple[str, str]]:
    return [(f"{p.stem}/${v['name']}", v["definition"]) for p in FILES
            for v in json.loads(p.read_text())["templating"]["list"] if "definition" in v]


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    with watched_registry(tmp_path_factory.mktemp("dashboards")) as (_, _, prom):
        yield prom


@pytest.mark.parametrize("name,expr", queries(), ids=[q[0] for q in queries()])
def test_panel_query_returns_data(prom, name, expr):
    result = prom.query(substitute(expr))  # raises QueryError if Prometheus cannot parse it
    if result:
        return
    # empty: every metric Prometheus lacks must be explained, and something must explain it
    absent = sorted(m for m in set(re.findall(r"\bdtr_[a-z0-9_]+", expr)) if not prom.query(f"count({m})"))
    unexplained = [m for m in absent if m not in EMPTY_HERE]
    assert not unexplained, f"{name}: {unexplained} not scraped, no reason given"
    reasons = [f"{m}: {EMPTY_HERE[m]}" for m in absent]
    reasons += [f"{c}: {UNKNOWN_CHECKS[c]}" for c in re.findall(r'check="(\w+)"', expr)
                if c in UNKNOWN_CHECKS and not prom.query(f'dtr_sizing_observed{{check="{c}"}}')]
    assert reasons, f"{name}: {substitute(expr)} returned nothing"
    pytest.xfail("; ".join(reasons))


@pytest.mark.parametrize("name,definition", variable_queries(), ids=[q[0] for q in variable_queries()])
def test_variable_query_finds_values(prom, name, definition):
    metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", definition).groups()
    values = prom.api(f"label/{label}/values", **{"match[]": substitute(metric)})
    assert values, f"{name}: {definition} found no values"
