"""Docker discovery against a real dockerd running a stand-in DTR node (tests/dtr_node.py).

The tests run in file order on one session node: the last one kills dockerd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from exporter.engine import Engine, EngineError, NotFound
from tests.dtr_node import SLEEPERS, VERSION, dtr_node, series, value  # noqa: F401 (dtr_node is a fixture)
from tests.registry import Registry
from tests.standin_dtr import StandinDtr
from tests.support import ROOT, Exporter, run_exporter, wait_for

COMPONENTS = (*SLEEPERS, "registry")


def metrics(node, tmp_path, *extra: str, env: dict | None = None) -> str:
    done = run_exporter("metrics", "--docker.host", node.host, "--storage.state-dir", str(tmp_path / "state"),
                        *(extra or ("--collector.storage",)), timeout=120, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def pusher(node, tmp_path) -> Registry:
    """tests/registry.py's v2 client, pointed at the registry inside the dtr-registry container."""
    client = Registry(tmp_path / "client")
    client.url = node.registry_url
    return client


def test_finds_replica_version_components_and_counts_the_store(dtr_node, tmp_path):
    client = pusher(dtr_node, tmp_path)
    _, app = client.push_image("team/app", "1.0", [4096, 8192])
    _, base = client.push_image("base", "latest", [2048])
    out = metrics(dtr_node, tmp_path)

    assert value(out, "dtr_exporter_collector_success", collector="docker") == 1
    assert value(out, "dtr_info", replica_id=dtr_node.replica_id, version=VERSION) == 1
    for component in COMPONENTS:
        assert value(out, "dtr_container_up", component=component, container=dtr_node.name(component)) == 1
    assert len(series(out, "dtr_container_up")) == len(COMPONENTS)
    assert value(out, "dtr_container_memory_bytes", component="registry") > 1_000_000  # a Go server, not sleep
    assert value(out, "dtr_container_cpu_seconds_total", component="registry") > 0

    # the store found is the volume's mount point, and the storage collector counted what was pushed there
    store = str(dtr_node.store)
    assert value(out, "dtr_exporter_collector_success", collector="storage") == 1, out
    [(labels, blobs)] = series(out, "dtr_storage_blobs").items()
    assert dict(labels)["storage"].endswith(store.split("/data/", 1)[1])
    assert blobs == len(app) + len(base)
    assert value(out, "dtr_storage_blob_bytes") == sum(app.values()) + sum(base.values())
    assert value(out, "dtr_storage_repositories") == 2
    filesystems = {dict(k)["role"] for k in series(out, "dtr_filesystem_avail_bytes")}
    assert filesystems == {"docker", "storage"}


def test_the_discovered_store_is_read_under_path_rootfs(dtr_node, tmp_path):
    """In a container the host's / is at /host: Docker's host path must be read under --path.rootfs."""
    rootfs = Path(tempfile.mkdtemp(prefix="dtr-rootfs-", dir="/var/tmp"))
    subprocess.run(["mount", "--bind", "-o", "ro", "/", str(rootfs)], check=True)
    try:
        seen = {}
        for label, extra in (("host", ()), ("container", ("--path.rootfs", str(rootfs)))):
            out = metrics(dtr_node, tmp_path / label, "--collector.storage", *extra)
            assert value(out, "dtr_exporter_collector_success", collector="storage") == 1, out
            [(labels, _)] = series(out, "dtr_storage_blobs").items()
            storage_fs = [dict(k) for k in series(out, "dtr_filesystem_avail_bytes") if dict(k)["role"] == "storage"]
            seen[label] = (dict(labels)["storage"], storage_fs[0]["mountpoint"])
        assert seen["container"][0] == seen["host"][0]  # the same store, the same id
        # named as the host names it (a non-recursive bind hides dockerd's own mount of its data root)
        assert not seen["container"][1].startswith(str(rootfs))
    finally:
        subprocess.run(["umount", str(rootfs)], check=False)
        rootfs.rmdir()


def test_an_s3_driver_from_the_dtr_api_reaches_dtr_info_and_the_checks(dtr_node, tmp_path):
    with StandinDtr({dtr_node.replica_id: "OK"}, driver="s3") as api:
        out = metrics(dtr_node, tmp_path, "--no-collector.storage", "--dtr.url", api.url,
                      "--dtr.username", api.username, env={"DTR_PASSWORD": api.password})
    assert value(out, "dtr_info", replica_id=dtr_node.replica_id, storage_driver="s3") == 1
    assert value(out, "dtr_replica_healthy", replica_id=dtr_node.replica_id) == 1
    for check in ("storage_io", "inodes_free", "page_cache_hit_ratio"):
        assert value(out, "dtr_sizing_check_state", check=check, severity="warning", state="not_applicable") == 1
    # throughput with an external driver: the registry container's counters (absent here: host network)
    assert value(out, "dtr_container_cpu_seconds_total", component="registry") > 0


def test_a_stopped_component_reads_0(dtr_node, tmp_path):
    jobrunner = dtr_node.name("jobrunner")
    dtr_node.dockerd.docker("stop", "-t", "1", jobrunner)
    try:
        out = metrics(dtr_node, tmp_path, "--no-collector.pagecache")
    finally:
        dtr_node.dockerd.docker("start", jobrunner)
    assert value(out, "dtr_container_up", component="jobrunner") == 0
    assert value(out, "dtr_container_memory_bytes", component="jobrunner") is None
    assert value(out, "dtr_container_up", component="api") == 1
    assert value(out, "dtr_exporter_collector_success", collector="docker") == 1


def test_storage_follows_a_recreated_registry_container(dtr_node, tmp_path):
    """A reconfigure or upgrade recreates dtr-registry-<id>; a serving exporter keeps the store and counts on."""
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({"collectors": {"docker": {"interval": "1s", "timeout": "5s"},
                                                 "storage": {"enabled": True, "interval": "1s"}}}))
    with Exporter("--config.file", str(config), "--docker.host", dtr_node.host,
                  "--storage.state-dir", str(tmp_path / "state")) as exporter:
        def blobs():
            return value(requests.get(exporter.url + "/metrics", timeout=5).text, "dtr_storage_blobs")
        before = wait_for(blobs, timeout=30, what="a first count of the store")
        dtr_node.run_registry()
        _, pushed = pusher(dtr_node, tmp_path).push_image("after/recreate", "1", [1024])
        wait_for(lambda: blobs() == before + len(pushed), timeout=30, what="the new blobs counted")


def test_the_engine_client_against_the_real_daemon(dtr_node):
    """exporter/engine.py's three calls, on the API version the daemon speaks: shapes the collector reads."""
    api = Engine(dtr_node.host, timeout=10)
    listed = {c["Names"][0]: c for c in api.containers()}
    registry = next(c for name, c in listed.items() if name.startswith("/dtr-registry-"))
    assert registry["State"] == "running" and registry["Mounts"]
    details = api.inspect(registry["Id"])
    assert details["State"]["Pid"] > 0 and "HostConfig" in details and details["LogPath"]
    stats = api.stats(registry["Id"])
    assert stats["memory_stats"]["usage"] > 0 and stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    with pytest.raises(NotFound, match="HTTP 404: No such container: 0123abc"):
        api.inspect("0123abc")
    with pytest.raises(NotFound):
        api.stats("0123abc")
    with pytest.raises(EngineError, match=r"GET /nosuch/path: HTTP 404"):
        api.get("/nosuch/path")


def test_the_docker_collector_loads_no_http_library(dtr_node, tmp_path):
    """The Engine API over http.client: neither the Docker SDK nor requests and urllib3 beneath it,
    6.6 MiB resident for the life of the process (docs/performance.md)."""
    probe = (f"import sys\nfrom exporter import cli\n"
             f"status = cli.main(['metrics', '--docker.host', {dtr_node.host!r}, '--log.level=error', "
             f"'--storage.state-dir', {str(tmp_path)!r}])\n"
             f"print(status, sorted({{'docker', 'requests', 'urllib3'}} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    text, _, loaded = done.stdout.rstrip("\n").rpartition("\n")
    assert value(text, "dtr_exporter_collector_success", collector="docker") == 1, done.stderr
    assert value(text, "dtr_container_up", component="registry") == 1
    assert loaded == "0 []"


def test_killing_dockerd_fails_the_docker_collector_alone_until_it_is_back(dtr_node, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({"collectors": {"docker": {"interval": "1s", "timeout": "4s"}}}))
    with Exporter("--config.file", str(config), "--docker.host", dtr_node.host) as exporter:
        def scrape() -> str:
            answer = requests.get(exporter.url + "/metrics", timeout=2)  # never slowed by a dead daemon
            assert answer.status_code == 200
            return answer.text

        def success(name: str, text: str) -> float | None:
            return value(text, "dtr_exporter_collector_success", collector=name)

        def docker_reads(wanted: int):
            text = scrape()
            # once down, no stale containers: a pass cut short mid-stats may still show them, the next not
            gone = wanted == 1 or not series(text, "dtr_container_up")
            return text if success("docker", text) == wanted and gone else None

        wait_for(lambda: docker_reads(1), timeout=30, what="docker collector ok")
        dtr_node.dockerd.kill()
        down = wait_for(lambda: docker_reads(0), timeout=30, what="docker collector failing, no containers")
        assert success("memory", down) == 1 and success("cpu", down) == 1
        dtr_node.restart_dockerd()
        def registry_back():
            text = docker_reads(1)
            return text and value(text, "dtr_container_up", component="registry") == 1

        wait_for(registry_back, timeout=60, what="docker collector recovered, the registry seen running")
