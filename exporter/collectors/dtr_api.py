"""DTR's own view of itself, through its HTTP API at ``--dtr.url``.

Emits dtr_api_up (1 when every call got a well-formed answer), dtr_api_healthy
(``/_ping``'s verdict), dtr_replica_healthy{replica_id} (``replica_health`` of
``/api/v0/meta/cluster_status``), dtr_cluster_issues{critical}, and
dtr_api_storage_driver_info{driver} (``/api/v0/admin/settings/registry/simple``).

A DTR API that is down, slow or answers nonsense (HTML, a 500, a huge body,
JSON of the wrong shape, a redirect loop) is a measurement, not a fault of the
exporter: dtr_api_up reads 0, the reason goes to the log once, and the
collector's success stays 1. Success reads 0 only when the exporter cannot ask
at all (the password file became unreadable). The password comes from
``dtr.password_file`` or ``DTR_PASSWORD`` and goes nowhere but the
Authorization header. The replicas and the driver it last heard of go on in its
reading's ``found`` while the API is away, so a short outage does not move the store.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from prometheus_client.core import GaugeMetricFamily, Metric

from . import NOTHING, Found, Spec

SPEC = Spec(False, 60, 20, "the DTR API at --dtr.url (/_ping, cluster status, storage settings)", discovers=1)

log = logging.getLogger(__name__)
PASSWORD_ENV = "DTR_PASSWORD"
MAX_BODY = 1 << 20  # the largest answer read; DTR's are a few KiB
MAX_REDIRECTS = 3
PING = "/_ping"
CLUSTER_STATUS = "/api/v0/meta/cluster_status"
STORAGE_SETTINGS = "/api/v0/admin/settings/registry/simple"
# keys of a Distribution `storage` section that configure something other than the driver
NOT_DRIVERS = frozenset({"delete", "redirect", "cache", "maintenance"})


@dataclass(frozen=True)
class DtrApiReading:
    """What the DTR API said. ``up`` False: some call got no well-formed answer (``error`` says which)."""

    up: bool
    error: str = ""
    healthy: bool | None = None  # /_ping's verdict on the replica answering
    replica_health: dict[str, bool] = field(default_factory=dict)  # replica id -> health "OK"
    critical_issues: int | None = None
    issues: int | None = None
    storage_driver: str | None = None
    found: Found = NOTHING  # the replicas and driver last heard of, for the other collectors


class ApiError(Exception):
    """One call got no usable answer; the message says why in one line."""


def read_password(config) -> str | None:
    """The password or token: the file when configured (re-read each time, so rotation works), else the env."""
    if config.dtr_password_file:
        return Path(config.dtr_password_file).read_text(encoding="utf-8").strip()
    return os.environ.get(PASSWORD_ENV) or None


def fetch_json(session, url: str, timeout: float, auth) -> object:
    """GET ``url`` with a requests.Session and parse JSON, bounded in time, size and redirects."""
    import requests  # here: the other collectors never need it
    deadline = time.monotonic() + timeout
    try:
        with session.get(url, timeout=timeout, auth=auth, stream=True,
                         headers={"Accept": "application/json"}) as resp:
            if resp.status_code in (401, 403):
                raise ApiError(f"HTTP {resp.status_code}: the credentials were refused or lack admin rights")
            if resp.status_code != 200:
                raise ApiError(f"HTTP {resp.status_code}")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_BODY:
                raise ApiError(f"answer of {int(length)} bytes is over the {MAX_BODY} byte limit")
            body = bytearray()
            for chunk in resp.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BODY:
                    raise ApiError(f"answer is over the {MAX_BODY} byte limit")
                if time.monotonic() > deadline:
                    raise ApiError(f"answer not complete within {timeout:g}s")
            content_type = resp.headers.get("Content-Type", "")
    except requests.TooManyRedirects:
        raise ApiError(f"redirect loop (more than {MAX_REDIRECTS} redirects)") from None
    except requests.Timeout:
        raise ApiError(f"no answer within {timeout:g}s") from None
    except requests.exceptions.SSLError as err:
        raise ApiError(f"TLS failed: {type(err.__context__ or err).__name__}") from None
    except requests.ConnectionError:
        raise ApiError("cannot connect") from None
    except requests.RequestException as err:
        raise ApiError(type(err).__name__) from None
    text = bytes(body).lstrip()
    if "html" in content_type or text[:1] == b"<":
        raise ApiError("answered HTML, not JSON (a login page or a proxy in the way?)")
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError("answer is not JSON") from None


def parse_ping(doc: object) -> bool:
    if not isinstance(doc, dict):
        raise ApiError("expected a JSON object")
    healthy = doc.get("Healthy", True)
    if not isinstance(healthy, bool):
        raise ApiError("Healthy is not true or false")
    return healthy


def parse_cluster_status(doc: object) -> tuple[dict[str, bool], int, int]:
    """replica id -> healthy, and the count of current issues and of critical ones."""
    if not isinstance(doc, dict) or not isinstance(doc.get("replica_health"), dict):
        raise ApiError("expected an object with replica_health: {replica id: status}")
    health = doc["replica_health"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in health.items()):
        raise ApiError("replica_health must map replica ids to status strings")
    issues = doc.get("current_issues") or []
    if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
        raise ApiError("current_issues must be a list of objects")
    return ({k: v == "OK" for k, v in health.items()}, len(issues),
            sum(1 for i in issues if i.get("critical") is True))


def parse_storage_settings(doc: object) -> str:
    """The storage driver's name: the one key of ``storage`` that configures a driver."""
    storage = doc.get("storage") if isinstance(doc, dict) else None
    if not isinstance(storage, dict):
        raise ApiError("expected an object with storage: {driver: parameters}")
    drivers = sorted(k for k in storage if k not in NOT_DRIVERS)
    if len(drivers) != 1:
        raise ApiError(f"storage names {len(drivers)} drivers, expected one")
    return drivers[0]


def validate(config) -> None:
    """Settings that cannot work stop the exporter at start (exit 2), naming the key."""
    from ..config import ConfigError  # here: exporter.config imports the collectors package
    url = urlsplit(config.dtr_url or "")
    if "@" in url.netloc:  # checked first: the message below repeats the URL, and must not repeat a password
        raise ConfigError(f"dtr.url: no credentials in the URL; use dtr.username with dtr.password_file or {PASSWORD_ENV}")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"dtr.url: {config.dtr_url!r} is not an http(s) URL such as https://dtr.example.com")
    if config.dtr_username and not config.dtr_password_file and not os.environ.get(PASSWORD_ENV):
        raise ConfigError(f"dtr.username: needs a password: set dtr.password_file or the {PASSWORD_ENV} environment variable")
    for key, path in (("dtr.password_file", config.dtr_password_file), ("dtr.ca_file", config.dtr_ca_file)):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{key}: cannot read {path}")


class DtrApiCollector:
    name = "dtr_api"

    def __init__(self, ctx):
        self.ctx = ctx
        self.config = ctx.config
        validate(self.config)
        self.base = (self.config.dtr_url or "").rstrip("/")
        self.timeout = self.config.dtr_timeout
        self._last_error: str | None = None
        self._known = NOTHING  # the replicas and driver of the last answers that named them
        import requests  # here, not at the top: ~6 MiB resident that only an enabled dtr_api needs
        self.session = requests.Session()
        self.session.max_redirects = MAX_REDIRECTS
        self.session.trust_env = False  # no proxy from the environment in front of a node-local API
        self.session.verify = False if self.config.dtr_insecure else (self.config.dtr_ca_file or True)

    def _auth(self):
        if not self.config.dtr_username:
            return None
        password = read_password(self.config)  # OSError here is the exporter's fault: success 0
        return (self.config.dtr_username, password or "")

    def collect(self, found: Found = NOTHING) -> DtrApiReading:
        auth = self._auth()
        healthy = health = issues = critical = driver = None
        try:
            step = PING
            healthy = parse_ping(fetch_json(self.session, self.base + PING, self.timeout, None))
            step = CLUSTER_STATUS
            health, issues, critical = parse_cluster_status(
                fetch_json(self.session, self.base + CLUSTER_STATUS, self.timeout, auth))
            step = STORAGE_SETTINGS
            driver = parse_storage_settings(fetch_json(self.session, self.base + STORAGE_SETTINGS, self.timeout, auth))
            error = ""
        except ApiError as err:
            error = f"{step}: {err}"
        self._tell(error)
        self._known = Found(storage_driver=driver, replicas=tuple(sorted(health or ()))).over(self._known)
        return DtrApiReading(up=not error, error=error, healthy=healthy, replica_health=health or {},
                             issues=issues, critical_issues=critical, storage_driver=driver, found=self._known)

    def _tell(self, error: str) -> None:
        """One log line when the API's state changes, not one per pass."""
        if error and error != self._last_error:
            log.warning("DTR API not usable", extra={"url": self.base, "err": error})
        elif not error and self._last_error:
            log.info("DTR API answers again", extra={"url": self.base})
        self._last_error = error


COLLECTOR = DtrApiCollector


def families(r: DtrApiReading) -> Iterator[Metric]:
    yield GaugeMetricFamily("dtr_api_up", "1 when every DTR API call got a well-formed answer.", 1 if r.up else 0)
    if r.healthy is not None:
        yield GaugeMetricFamily("dtr_api_healthy", "The DTR replica's own verdict from /_ping.", 1 if r.healthy else 0)
    health = GaugeMetricFamily("dtr_replica_healthy", "1 when cluster_status reports the replica OK.",
                               labels=["replica_id"])
    for replica, ok in sorted(r.replica_health.items()):
        health.add_metric([replica], 1 if ok else 0)
    yield health
    if r.issues is not None:
        issues = GaugeMetricFamily("dtr_cluster_issues", "Current issues cluster_status reports.",
                                   labels=["critical"])
        issues.add_metric(["true"], r.critical_issues or 0)
        issues.add_metric(["false"], r.issues - (r.critical_issues or 0))
        yield issues
    if r.storage_driver:
        driver = GaugeMetricFamily("dtr_api_storage_driver_info", "The registry storage driver DTR's settings "
                                   "name; always 1.", labels=["driver"])
        driver.add_metric([r.storage_driver], 1)
        yield driver
