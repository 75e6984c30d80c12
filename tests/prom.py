"""Real Prometheus and Alertmanager for the tests, on free loopback ports.

``Prometheus`` writes a config (scrape interval 1s by default) with the given
targets, rule files and Alertmanager, starts Debian's ``prometheus``, waits for
``/-/ready`` and, with ``wait_targets_up``, for every target to be scraped.
``Alertmanager`` does the same for ``prometheus-alertmanager`` (clustering off),
and ``Webhook`` is a receiver that keeps every notification it is sent.
Each is a context manager that stops its process and leaves nothing running.
``watched_dtr_node`` puts them to work on a stand-in DTR node (``DtrStack``).

    with Prometheus(tmp_path, targets=[exporter.url]) as prom:
        prom.wait_targets_up()
        prom.query("dtr_memory_total_bytes")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import requests
import yaml

from exporter.forecast import Sample
from exporter.history import History
from exporter.storage_id import storage_id
from tests.support import Exporter, free_port, require, stop_process, wait_for

if TYPE_CHECKING:
    from tests.dtr_node import DtrNode
    from tests.registry import Registry
    from tests.standin_dtr import StandinDtr


FAST_COLLECTORS = ("memory", "cpu", "filesystem", "diskio", "storage", "pagecache", "traffic")


def fast_exporter_config(path: Path, thresholds: dict | None = None, collectors: dict | None = None,
                         **sections: dict) -> Path:
    """An exporter config whose host collectors sample every second, so ratios and windows
    exist a few seconds after start instead of after the default 15-300 s; ``collectors``
    adds or overrides collector settings, ``sections`` are further top-level sections."""
    config = {"collectors": {**{name: {"interval": "1s"} for name in FAST_COLLECTORS}, **(collectors or {})},
              **sections}
    if thresholds:
        config["thresholds"] = thresholds
    path.write_text(yaml.safe_dump(config))
    return path


class QueryError(AssertionError):
    """Prometheus answered a query with an error (a parse error, a bad join, ...)."""


def _host_port(url_or_address: str) -> str:
    return url_or_address.split("://", 1)[-1].rstrip("/")


class Prometheus:
    def __init__(self, workdir: Path, targets: Iterable[str] = (), rule_files: Iterable[Path] = (),
                 alertmanager: str | None = None, job: str = "dtr-sizing-exporter",
                 scrape_interval: str = "1s", evaluation_interval: str = "1s",
                 extra_scrape_configs: Iterable[dict] = ()):
        self.workdir = Path(workdir) / f"prometheus-{free_port()}"
        self.workdir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": evaluation_interval},
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [_host_port(t) for t in targets]}]},
                               *extra_scrape_configs],
        }
        if alertmanager:
            self.config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [_host_port(alertmanager)]}]}]}
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "prometheus.log"

    def start(self) -> "Prometheus":
        binary = require("prometheus")
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
             "--rules.alert.resend-delay=1s"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: self._alive() and requests.get(self.url + "/-/ready", timeout=2).ok,
                 timeout=60, what=f"prometheus /-/ready (log {self.log})")
        return self

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return True

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> "Prometheus":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def api(self, path: str, **params) -> object:
        """The ``data`` of a /api/v1 answer; raises QueryError on an error answer."""
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise QueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (a scalar comes back as one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that returns one sample, or None when it returns none."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr} returned {len(result)} samples, expected one")
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def wait_targets_up(self, timeout: float = 30) -> list[dict]:
        def all_up():
            targets = self.targets()
            return targets if targets and all(t["health"] == "up" for t in targets) else None
        return wait_for(all_up, timeout=timeout, what=f"every target of {self.url} up")

    def alerts(self, name: str | None = None, state: str | None = None) -> list[dict]:
        """Active (pending or firing) alerts, optionally of one name and state."""
        return [a for a in self.api("alerts")["alerts"]
                if (name is None or a["labels"]["alertname"] == name) and (state is None or a["state"] == state)]

    def rule_groups(self) -> list[dict]:
        return self.api("rules")["groups"]

    def evaluations(self) -> float:
        """Rule evaluations so far (all groups): a clock to wait on instead of sleeping."""
        text = requests.get(self.url + "/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("prometheus_rule_evaluations_total"))


class Webhook:
    """An HTTP receiver for Alertmanager's webhook: keeps every notification body."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.notifications: list[dict] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with received._lock:
                    received.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self, status: str | None = None) -> list[dict]:
        """Every alert of every notification so far, optionally only ``firing`` or ``resolved``."""
        with self._lock:
            return [a for n in self.notifications for a in n["alerts"] if status is None or a["status"] == status]

    def __enter__(self) -> "Webhook":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Alertmanager:
    """Debian's prometheus-alertmanager with a config sending everything to ``webhook_url``."""

    def __init__(self, workdir: Path, webhook_url: str | None = None, config: dict | None = None):
        self.workdir = Path(workdir) / f"alertmanager-{free_port()}"
        self.workdir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config or {
            # short waits so a test sees a notification within seconds of the alert
            "route": {"receiver": "test", "group_by": ["alertname", "instance", "severity"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "alertmanager.log"

    def start(self) -> "Alertmanager":
        binary = require("prometheus-alertmanager")
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is None and requests.get(self.url + "/-/ready", timeout=2).ok,
                 timeout=60, what=f"alertmanager /-/ready (log {self.log})")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> "Alertmanager":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def alerts(self) -> list[dict]:
        return requests.get(self.url + "/api/v2/alerts", timeout=5).json()


HISTORY_DAYS = 4
REPOSITORY = "team/app"
# What a test may look at only once Prometheus has it: rates over a few scrapes, the CPU busy
# window, the first scan and the growth it continues, container stats, the DTR API's answers,
# registry traffic, the page-cache hit ratio (over a MiB of reads) and the verdicts they feed.
SLOW_SERIES = (
    "rate(dtr_cpu_seconds_total[5s])", "dtr_cpu_busy_ratio", "dtr_storage_blobs > 0",
    "dtr_registry_served_bytes_total > 0", "dtr_api_up == 1", "dtr_info", "dtr_replica_healthy",
    "rate(dtr_container_cpu_seconds_total[5s])", "rate(dtr_container_network_receive_bytes_total[5s])",
    "dtr_storage_growth_bytes_per_second > 0", "dtr_storage_full_forecast_seconds",
    'dtr_sizing_observed{check="storage_forecast"}', 'dtr_sizing_observed{check="inodes_free"}',
    'dtr_sizing_observed{check="page_cache_hit_ratio"}',
    'dtr_storage_hot_bytes{window="1h"} > 0', 'dtr_storage_hot_method{method="log"}', "dtr_page_cache_file_hit_ratio",
    'dtr_sizing_threshold{check="memory_hot_set"}', "dtr_sizing_recommended_memory_bytes",
    "dtr_sizing_recommended_cpu_cores",
    'dtr_storage_reclaimable_bytes{mode="unreferenced"} > 0', 'dtr_sizing_observed{check="storage_forecast_after_gc"}',
)


def seed_growth_history(state_dir: Path, store: Path, data_bytes: int, now: float) -> Path:
    """Hourly samples over HISTORY_DAYS days in which the store grew steadily to ``data_bytes``,
    written with the exporter's own History class under the id the exporter will give the store,
    so its first scan continues the series and the growth and forecast are published at once."""
    history = History(state_dir, storage_id(store, Path("/proc")))
    st = os.statvfs(store)
    hours = HISTORY_DAYS * 24
    for i in range(hours + 1):  # from a quarter of today's size to all of it, the last ten minutes ago
        history.add(Sample(now - 600 - (hours - i) * 3600, data_bytes * (hours + 3 * i) // (4 * hours),
                           st.f_bavail * st.f_frsize))
    assert not history.warning, history.warning
    return history.path


@dataclass
class DtrStack:
    """A stand-in DTR node watched by an exporter that a Prometheus scrapes (see ``watched_dtr_node``)."""

    node: "DtrNode"
    api: "StandinDtr"
    client: "Registry"  # tests/registry.py's v2 client, pointed at the registry in dtr-registry-<id>
    layers: list[str]
    exporter: Exporter
    prom: Prometheus

    def ready(self) -> Prometheus:
        """Pull every layer twice and wait until SLOW_SERIES are all in Prometheus. The hit ratio
        needs reads within the exporter's last five minutes, which a session-long stack cannot
        promise each module that uses it: each calls this first."""
        for digest in self.layers * 2:
            self.client.pull_blob(REPOSITORY, digest)

        # recorded series exist only once Prometheus has evaluated their rules over scraped data
        recorded = [r["record"] for f in self.prom.config.get("rule_files", [])
                    for g in yaml.safe_load(Path(f).read_text())["groups"] for r in g["rules"] if "record" in r]

        def all_there() -> bool:
            missing = [q for q in (*SLOW_SERIES, *recorded) if not self.prom.query(q)]
            assert not missing, f"no data yet for {missing}"  # wait_for's timeout message shows the last one
            return True
        wait_for(all_there, timeout=90, what="every slow series in Prometheus")
        return self.prom


@contextmanager
def watched_dtr_node(workdir: Path, rule_files: Iterable[Path] = ()):
    """A stand-in DTR node (tests/dtr_node.py; its components other than the registry on a bridge
    network, so Docker reports their network counters) with an image pushed to its registry, the
    DTR API stand-in answering for it, and an exporter that finds both through --docker.host and
    --dtr.url, starts on a state dir seeded with days of growth history and reads the registry's
    own metrics; Prometheus scrapes the exporter and the registry every second."""
    from tests.dtr_node import DtrNode  # need dockerd and docker-registry: imported only by who uses them
    from tests.registry import Registry
    from tests.standin_dtr import StandinDtr
    workdir = Path(workdir)
    # the store on a disk-backed filesystem: /tmp may be tmpfs, whose pages never leave the cache
    node = DtrNode(Path(tempfile.mkdtemp(prefix="dtr-node-", dir="/var/tmp")), network="dtr-ol")
    try:
        node.start()
        client = Registry(workdir / "client")
        client.url = node.registry_url
        _, blobs = client.push_image(REPOSITORY, "1.0", [1 << 20, 1 << 20])
        # garbage for the garbage collector's figures: an image pushed, then its manifest deleted
        gone, _ = client.push_image("team/old", "gone", [64 << 10])
        client.delete_manifest("team/old", gone)
        state = workdir / "state"
        seed_growth_history(state, node.store, sum(blobs.values()), time.time())
        pid = int(node.dockerd.docker("inspect", "-f", "{{.State.Pid}}", node.name("registry")).stdout)
        config = fast_exporter_config(
            workdir / "exporter.yml", dtr={"timeout": "1s"},
            collectors={"docker": {"enabled": True, "interval": "5s"}, "dtr_api": {"enabled": True, "interval": "1s"},
                        # follows the registry container's json-file log, which Docker names
                        "workload": {"interval": "1s"}},
            # this registry's process only: other tests' registries come and go on this host
            registry={"process_names": [], "pids": [pid]})
        scrape_registry = {"job_name": "registry",
                           "static_configs": [{"targets": [_host_port(node.metrics_url).split("/")[0]]}]}
        with StandinDtr({node.replica_id: "OK"}) as api, \
                Exporter("--config.file", str(config), "--docker.host", node.host, "--dtr.url", api.url,
                         "--dtr.username", api.username, "--storage.state-dir", str(state),
                         "--registry.metrics-url", node.metrics_url, env={"DTR_PASSWORD": api.password}) as exporter, \
                Prometheus(workdir, targets=[exporter.url], rule_files=rule_files,
                           extra_scrape_configs=[scrape_registry]) as prom:
            prom.wait_targets_up()
            layers = sorted(d for d, size in blobs.items() if size == 1 << 20)
            yield DtrStack(node, api, client, layers, exporter, prom)
    finally:
        node.stop()
        shutil.rmtree(node.base, ignore_errors=True)
