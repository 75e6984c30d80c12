"""`serve` with the default intervals measures the store from its first minute, and is ready only then.

The storage collector's interval is 5 minutes: before discovery ran first, a
store found through Docker stayed unmeasured for that long after every start
while /-/ready already said 200. A throttled walk (--storage.scan-rate) keeps
the first scan going for a few seconds, so "not ready while walking" is seen.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import requests

from exporter.collectors import DEFAULTS
from tests.dtr_node import dtr_node, series, value  # noqa: F401 (dtr_node is a fixture)
from tests.support import ROOT, Exporter, wait_for

BLOBS = 1280
RATE = "200"  # files per second: a first walk of BLOBS takes about 6 s


def add_blobs(store: Path, count: int, seed: str) -> list[Path]:
    """``count`` one-byte blobs in the Distribution layout under ``store``; their digest directories."""
    blobs = store / "docker" / "registry" / "v2" / "blobs" / "sha256"
    made = []
    for i in range(count):
        digest = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
        (blobs / digest[:2] / digest).mkdir(parents=True)
        (blobs / digest[:2] / digest / "data").write_bytes(b"x")
        made.append(blobs / digest[:2] / digest)
    return made


def ready_status(url: str) -> int:
    return requests.get(url + "/-/ready", timeout=5).status_code


def watch_first_minute(exporter: Exporter, started: float) -> tuple[str, str, float]:
    """(the 503 body seen before ready, /metrics at the first 200, seconds from start to ready)."""
    early = requests.get(exporter.url + "/-/ready", timeout=5)
    assert early.status_code == 503, "ready before the first walk of the store ended"
    assert requests.get(exporter.url + "/-/healthy", timeout=5).status_code == 200  # liveness holds meanwhile
    wait_for(lambda: ready_status(exporter.url) == 200, timeout=60, interval=0.2, what="/-/ready 200")
    took = time.monotonic() - started
    return early.text, requests.get(exporter.url + "/metrics", timeout=5).text, took


def assert_store_measured(text: str, blobs: int) -> None:
    [(labels, counted)] = series(text, "dtr_storage_blobs").items()
    assert counted == blobs
    storage = dict(labels)["storage"]
    assert value(text, "dtr_storage_scan_timestamp_seconds", storage=storage) > 0
    assert value(text, "dtr_storage_page_cache_bytes", storage=storage) is not None
    assert "storage" in {dict(k)["role"] for k in series(text, "dtr_filesystem_avail_bytes")}


def test_defaults_are_the_ones_this_file_is_about():
    assert DEFAULTS["storage"][1] == 300 and DEFAULTS["pagecache"][1] == 60 and DEFAULTS["filesystem"][1] == 30


def first_minute(tmp_path, *args: str) -> str:
    """An exporter with ``args`` and the default intervals, watched from its start: its exposition once
    ready, which must come within a minute with the store walked before it."""
    exporter = Exporter(*args, "--storage.scan-rate", RATE, "--storage.state-dir", str(tmp_path / "state"))
    started = time.monotonic()
    try:
        exporter.start(ready=False)
        early, text, took = watch_first_minute(exporter, started)
    finally:
        exporter.stop()
    assert "storage" in early
    assert took < 60, f"ready after {took:.0f}s"
    return text


def test_a_flagged_store_is_measured_before_ready_with_the_default_intervals(tmp_path):
    add_blobs(tmp_path / "store", BLOBS, "flag")
    assert_store_measured(first_minute(tmp_path, "--storage.path", str(tmp_path / "store")), BLOBS)


def test_a_store_found_through_docker_is_measured_within_seconds(dtr_node, tmp_path):  # noqa: F811
    """The normal DTR case: no --storage.path, the store is the dtr-registry-<id> volume Docker names."""
    store = dtr_node.store
    before = sum(1 for _ in (store / "docker/registry/v2/blobs").glob("*/*/*"))  # other tests' pushes
    added = add_blobs(store, BLOBS, f"first-minute-{os.getpid()}")
    try:
        text = first_minute(tmp_path, "--docker.host", dtr_node.host)
        assert value(text, "dtr_exporter_collector_success", collector="docker") == 1
        assert_store_measured(text, before + BLOBS)
    finally:
        for digest in added:  # leave the session's store as the other tests pushed it
            shutil.rmtree(digest, ignore_errors=True)


def test_a_long_first_walk_never_restarts_the_exporter():
    """Liveness asks /-/healthy, readiness /-/ready: a store still on its first walk is out of rotation, not killed."""
    daemonset = (ROOT / "helm/dtr-sizing-exporter/templates/daemonset.yaml").read_text()
    liveness = daemonset.split("livenessProbe:", 1)[1].split("readinessProbe:", 1)[0]
    readiness = daemonset.split("readinessProbe:", 1)[1].split("securityContext:", 1)[0]
    assert "path: /-/healthy" in liveness and "path: /-/ready" in readiness
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DTR_SIZING_HEALTHCHECK_URL=http://127.0.0.1:9742/-/healthy" in dockerfile
