"""Parsing what Docker and the DTR API answer: recorded stats, documented API shapes, and the exposition.

stats-bridge-cgroup1.json is ``GET /containers/<id>/stats?stream=0`` recorded here from a container on a
user-defined bridge (it has ``networks``); stats-host-network-cgroup1.json from the host-network
dtr-registry container of tests/dtr_node.py (no ``networks``).
"""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from exporter.collectors import Context, docker as docker_collector
from exporter.collectors.dtr_api import (ApiError, DtrApiCollector, parse_cluster_status, parse_ping,
                                         parse_storage_settings)
from exporter.config import Config
from exporter.collectors.docker import ContainerStats, DockerReading
from exporter.collectors.dtr_api import DtrApiReading
from exporter.exposition import to_text
from exporter.sampler import Snapshot, Status
from tests.support import FIXTURES, require


def stats(name: str) -> dict:
    return json.loads((FIXTURES / "docker" / name).read_text())


def test_container_stats_from_a_recorded_answer():
    bridge = stats("stats-bridge-cgroup1.json")
    assert docker_collector.memory_bytes(bridge) == 602112
    assert docker_collector.cpu_seconds(bridge) == pytest.approx(0.019915206)
    assert docker_collector.network_bytes(bridge) == (1112, 0)
    assert docker_collector.network_bytes(stats("stats-host-network-cgroup1.json")) == (None, None)


def test_memory_leaves_out_inactive_file_cache_on_cgroup_v1_and_v2():
    v1 = copy.deepcopy(stats("stats-bridge-cgroup1.json"))
    v1["memory_stats"]["stats"]["total_inactive_file"] = 100_000
    assert docker_collector.memory_bytes(v1) == 602112 - 100_000
    v2 = {"memory_stats": {"usage": 5_000_000, "stats": {"inactive_file": 1_000_000, "anon": 3_000_000}}}
    assert docker_collector.memory_bytes(v2) == 4_000_000
    assert docker_collector.memory_bytes({"memory_stats": {}}) is None  # a container that just stopped


def test_no_docker_socket_is_an_empty_reading_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(docker_collector, "DEFAULT_SOCKET", str(tmp_path / "docker.sock"))
    reading = docker_collector.DockerCollector(Context(config=Config())).collect()
    assert reading == DockerReading(available=False)


def test_an_explicit_docker_host_that_is_absent_is_an_error(tmp_path):
    config = Config(docker_host=f"unix://{tmp_path}/docker.sock")
    with pytest.raises(Exception):
        docker_collector.DockerCollector(Context(config=config)).collect()


def test_documented_api_shapes():
    assert parse_ping({"Error": "", "Healthy": True}) is True
    assert parse_ping({"Error": "rethinkdb unreachable", "Healthy": False}) is False
    health, issues, critical = parse_cluster_status({
        "current_issues": [{"critical": True, "description": "x"}, {"critical": False, "description": "y"}],
        "replica_health": {"f2277ad178f7": "OK", "f3712d9c419a": "down"}})
    assert health == {"f2277ad178f7": True, "f3712d9c419a": False} and (issues, critical) == (2, 1)
    assert parse_storage_settings({"storage": {"s3": {"bucket": "b"}, "delete": {"enabled": True},
                                               "redirect": {"disable": True}}}) == "s3"


@pytest.mark.parametrize("parse, doc", [
    (parse_ping, ["Healthy"]),
    (parse_ping, {"Healthy": "yes"}),
    (parse_cluster_status, {"replica_health": ["f2277ad178f7"]}),
    (parse_cluster_status, {"replica_health": {"f2277ad178f7": 1}}),
    (parse_cluster_status, {"replica_health": {}, "current_issues": "none"}),
    (parse_storage_settings, {"storage": "s3"}),
    (parse_storage_settings, {"storage": {"delete": {"enabled": True}}}),
    (parse_storage_settings, {"storage": {"s3": {}, "azure": {}}}),
])
def test_wrong_shapes_are_api_errors(parse, doc):
    with pytest.raises(ApiError):
        parse(doc)


def test_dtr_families_pass_promtool(tmp_path):
    promtool = require("promtool")
    docker = DockerReading(True, "3f1a9c5e7b2d", "2.9.4", "s3", "/var/lib/docker/volumes/x/_data", "x", (
        ContainerStats("dtr-registry-3f1a9c5e7b2d", "registry", True, 7_000_000, 1.5, 10, 20),
        ContainerStats("dtr-jobrunner-3f1a9c5e7b2d", "jobrunner", False)))
    api = DtrApiReading(True, "", True, {"3f1a9c5e7b2d": True}, 0, 1, "s3")
    text = to_text(Snapshot(1, {"docker": Status(docker, True), "dtr_api": Status(api, True)}, True), []).decode()
    assert 'dtr_info{replica_id="3f1a9c5e7b2d",storage_driver="s3",version="2.9.4"} 1.0' in text
    assert 'dtr_container_up{component="jobrunner",container="dtr-jobrunner-3f1a9c5e7b2d"} 0.0' in text
    assert 'dtr_container_network_receive_bytes_total{component="registry"' in text
    assert 'component="jobrunner"' not in text.split("dtr_container_memory_bytes", 1)[1]
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_password_file_that_vanishes_fails_the_collector_not_the_api(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("token\n")
    config = Config(dtr_url="https://127.0.0.1:9", dtr_username="admin", dtr_password_file=str(secret))
    collector = DtrApiCollector(Context(config=config))  # readable at start: accepted
    secret.unlink()
    with pytest.raises(FileNotFoundError):  # the sampler turns this into success 0
        collector.collect()
