"""Real Prometheus and Alertmanager for the tests, on free loopback ports.

``Prometheus`` writes a config (scrape interval 1s by default) with the given
targets, rule files and Alertmanager, starts Debian's ``prometheus``, waits for
``/-/ready`` and, with ``wait_targets_up``, for every target to be scraped.
``Alertmanager`` does the same for ``prometheus-alertmanager`` (clustering off),
and ``Webhook`` is a receiver that keeps every notification it is sent.
Each is a context manager that stops its process and leaves nothing running.

    with Prometheus(tmp_path, targets=[exporter.url]) as prom:
        prom.wait_targets_up()
        prom.query("dtr_memory_total_bytes")
"""

from __future__ import annotations

import json
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable

import requests
import yaml

from tests.support import Exporter, free_port, require, stop_process, wait_for


FAST_COLLECTORS = ("memory", "cpu", "filesystem", "diskio", "storage", "pagecache", "traffic")


def fast_exporter_config(path: Path, thresholds: dict | None = None) -> Path:
    """An exporter config whose host collectors sample every second, so ratios and windows
    exist a few seconds after start instead of after the default 15-300 s."""
    config = {"collectors": {name: {"interval": "1s"} for name in FAST_COLLECTORS}}
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


@contextmanager
def watched_registry(workdir: Path, rule_files: Iterable[Path] = ()):
    """A real registry, pushed to and pulled from, an exporter watching it and Prometheus
    scraping both; yields (registry, exporter, prometheus) once rates, ratios, a storage scan,
    registry traffic and the page-cache hit ratio (over a MiB of reads) are all in Prometheus."""
    from tests.registry import Registry  # needs docker-registry; imported only by who uses it
    config = fast_exporter_config(Path(workdir) / "exporter.yml")
    with Registry(workdir) as registry:
        manifest, blobs = registry.push_image("team/app", "1.0", [1 << 20, 1 << 20])
        with Exporter("--config.file", str(config), "--storage.path", str(registry.storage),
                      "--registry.metrics-url", registry.metrics_url) as exporter, \
                Prometheus(workdir, targets=[exporter.url], rule_files=rule_files, extra_scrape_configs=[{
                    "job_name": "registry",
                    "static_configs": [{"targets": [_host_port(registry.metrics_url).split("/")[0]]}]}]) as prom:
            prom.wait_targets_up()
            for digest in sorted(set(blobs) - {manifest}) * 2:
                registry.pull_blob("team/app", digest)
            wait_for(lambda: prom.query("rate(dtr_cpu_seconds_total[5s])") and prom.query("dtr_cpu_busy_ratio")
                     and prom.query("dtr_storage_blobs > 0") and prom.query("dtr_registry_served_bytes_total > 0")
                     and prom.query('dtr_sizing_observed{check="page_cache_hit_ratio"}'),
                     timeout=60, what="rates, ratios, a storage scan, registry traffic and page-cache hits")
            yield registry, exporter, prom
