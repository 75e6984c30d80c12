"""DTR alerts and dashboard panels on a real Prometheus, against issue 4's stand-in DTR node.

The node (tests/dtr_node.py) is DTR's containers on a real dockerd, the API a stand-in server
(tests/standin_dtr.py). For speed the rules are loaded from a copy in which DTRComponentDown,
DTRAPIUnreachable and DTRReplicaUnhealthy have ``for: 0s`` instead of 5m / 10m / 5m; the
expressions are unchanged.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.dtr_node import dtr_node  # noqa: F401 (a session fixture)
from tests.prom import Prometheus, fast_exporter_config
from tests.standin_dtr import StandinDtr
from tests.support import ROOT, Exporter, wait_for

RULES = ROOT / "alerts" / "dtr-sizing.rules.yml"
NODE_DASHBOARD = ROOT / "dashboards" / "dtr-sizing-node.json"
SHORTENED = ("DTRComponentDown", "DTRAPIUnreachable", "DTRReplicaUnhealthy")
DTR_METRICS = ("dtr_info", "dtr_api_up", "dtr_container_", "dtr_replica_")
# Docker reports no network counters for a container on the host network, and this machine has no
# bridge, so the stand-in's containers use host networking: these are absent here (checked below).
EMPTY_HERE = ("dtr_container_network_receive_bytes_total", "dtr_container_network_transmit_bytes_total")
OTHER_REPLICA = "0f9e8d7c6b5a"  # a second replica in the stand-in's cluster status
VARIABLES = {"$job": ".*", "$node": ".*", "$storage": ".*", "$__rate_interval": "15s"}


@pytest.fixture(scope="module")
def stack(dtr_node, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    tmp = tmp_path_factory.mktemp("alerts-dtr")
    groups = yaml.safe_load(RULES.read_text())
    for rule in (r for g in groups["groups"] for r in g["rules"]):
        if rule.get("alert") in SHORTENED:
            rule["for"] = "0s"
    rules = tmp / "rules.yml"
    rules.write_text(yaml.safe_dump(groups))
    config = fast_exporter_config(tmp / "exporter.yml")
    settings = yaml.safe_load(config.read_text())
    settings["collectors"].update({"docker": {"enabled": True, "interval": "2s"},
                                   "dtr_api": {"enabled": True, "interval": "1s"}})
    settings["dtr"] = {"timeout": "1s"}
    config.write_text(yaml.safe_dump(settings))
    with StandinDtr({dtr_node.replica_id: "OK", OTHER_REPLICA: "OK"}) as dtr, \
            Exporter("--config.file", str(config), "--docker.host", dtr_node.host, "--dtr.url", dtr.url,
                     "--dtr.username", dtr.username, "--storage.state-dir", str(tmp / "state"),
                     env={"DTR_PASSWORD": dtr.password}) as exporter, \
            Prometheus(tmp, targets=[exporter.url], rule_files=[rules]) as prom:
        prom.wait_targets_up()
        wait_for(lambda: prom.query("dtr_api_up == 1") and prom.query("rate(dtr_container_cpu_seconds_total[15s])"),
                 timeout=90, what="DTR API up and two container stats samples in Prometheus")
        yield dtr_node, dtr, prom


def dtr_panel_queries() -> list[tuple[str, str]]:
    out = []
    for panel in json.loads(NODE_DASHBOARD.read_text())["panels"]:
        for t in panel.get("targets", []):
            if any(m in t["expr"] for m in DTR_METRICS):
                out.append((f"{panel['title']}/{t['refId']}", t["expr"]))
    return out


def test_dtr_panels_return_data(stack):
    _, _, prom = stack
    queries = dtr_panel_queries()
    assert len(queries) >= 7
    for name, expr in queries:
        for var, value in VARIABLES.items():
            expr = expr.replace(var, value)
        if any(m in expr for m in EMPTY_HERE) and not prom.query(f"count({{__name__=~'{'|'.join(EMPTY_HERE)}'}})"):
            continue  # absent from Prometheus altogether, as explained at EMPTY_HERE
        assert prom.query(expr), f"{name}: {expr} returned nothing"


def test_a_stopped_component_fires_and_resolves(stack):
    node, _, prom = stack
    assert prom.alerts("DTRComponentDown") == []
    node.dockerd.docker("stop", "-t", "1", node.name("jobrunner"))
    try:
        firing = wait_for(lambda: prom.alerts("DTRComponentDown", "firing"), timeout=60, what="DTRComponentDown")
        assert [a["labels"]["component"] for a in firing] == ["jobrunner"]
        assert firing[0]["labels"]["severity"] == "critical"
        instance = firing[0]["labels"]["instance"]
        assert firing[0]["annotations"]["summary"] == f"DTR component jobrunner is down on {instance}."
    finally:
        node.dockerd.docker("start", node.name("jobrunner"))
    wait_for(lambda: prom.alerts("DTRComponentDown") == [], timeout=60, what="DTRComponentDown resolved")


def test_a_broken_dtr_api_fires_and_resolves(stack):
    _, dtr, prom = stack
    assert prom.alerts("DTRAPIUnreachable") == []
    dtr.mode = "500"
    try:
        firing = wait_for(lambda: prom.alerts("DTRAPIUnreachable", "firing"), timeout=60, what="DTRAPIUnreachable")
        assert firing[0]["labels"]["severity"] == "warning"
    finally:
        dtr.mode = "ok"
    wait_for(lambda: prom.alerts("DTRAPIUnreachable") == [], timeout=60, what="DTRAPIUnreachable resolved")


def test_a_replica_reported_down_fires_and_resolves(stack):
    _, dtr, prom = stack
    assert prom.alerts("DTRReplicaUnhealthy") == []
    dtr.replicas[OTHER_REPLICA] = "down"
    try:
        firing = wait_for(lambda: prom.alerts("DTRReplicaUnhealthy", "firing"), timeout=60, what="DTRReplicaUnhealthy")
        assert [(a["labels"]["replica_id"], a["labels"]["severity"]) for a in firing] == [(OTHER_REPLICA, "warning")]
    finally:
        dtr.replicas[OTHER_REPLICA] = "OK"
    wait_for(lambda: prom.alerts("DTRReplicaUnhealthy") == [], timeout=60, what="DTRReplicaUnhealthy resolved")
