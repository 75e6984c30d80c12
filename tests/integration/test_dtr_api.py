"""The dtr_api collector against tests/standin_dtr.py, a stand-in for DTR's API (see that module
for where the response shapes come from), driven through the real CLI."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.dtr_node import value
from tests.standin_dtr import HUGE_BYTES, StandinDtr
from tests.support import run_exporter

REPLICAS = {"a1b2c3d4e5f6": "OK", "0f9e8d7c6b5a": "down"}
TIMEOUT = 1.0  # dtr.timeout for these runs
BASE_ENV = {k: v for k, v in os.environ.items() if k != "DTR_PASSWORD"}


@pytest.fixture
def standin():
    with StandinDtr(dict(REPLICAS)) as server:
        yield server


def config(tmp_path, **dtr) -> str:
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"dtr": {"timeout": TIMEOUT, **dtr}}))
    return str(path)


def metrics(standin, tmp_path, *extra: str, env=None):
    env = {**BASE_ENV, "DTR_PASSWORD": standin.password, **(env or {})}
    started = time.monotonic()
    done = run_exporter("metrics", "--config.file", config(tmp_path), "--dtr.url", standin.url,
                        "--dtr.username", standin.username, "--no-collector.docker", *extra, env=env)
    return done, time.monotonic() - started


def test_reads_health_replicas_and_driver_with_the_password_kept_secret(standin, tmp_path):
    done, _ = metrics(standin, tmp_path, "--log.level", "debug")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert value(out, "dtr_exporter_collector_success", collector="dtr_api") == 1  # enabled by --dtr.url alone
    assert value(out, "dtr_api_up") == 1
    assert value(out, "dtr_api_healthy") == 1
    assert value(out, "dtr_replica_healthy", replica_id="a1b2c3d4e5f6") == 1
    assert value(out, "dtr_replica_healthy", replica_id="0f9e8d7c6b5a") == 0
    assert value(out, "dtr_cluster_issues", critical="false") == 1
    assert value(out, "dtr_api_storage_driver_info", driver="filesystem") == 1
    authorized = [auth for path, auth in standin.requests if path.startswith("/api/v0/")]
    assert authorized and all(standin._authorized(a) for a in authorized)
    assert standin.password not in done.stdout + done.stderr


def test_password_file_wins_and_a_wrong_password_reads_api_down(standin, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("not-the-password\n")
    done, _ = metrics(standin, tmp_path, "--dtr.password-file", str(secret))
    assert done.returncode == 0, done.stderr
    assert value(done.stdout, "dtr_api_up") == 0
    assert "credentials were refused" in done.stderr
    assert "not-the-password" not in done.stdout + done.stderr


@pytest.mark.parametrize("mode, says", [
    ("timeout", "no answer within 1s"),
    ("500", "HTTP 500"),
    ("html", "answered HTML"),
    ("huge", "over the 1048576 byte limit"),
    ("wrong_json", "expected a JSON object"),
    ("redirect_loop", "redirect loop"),
])
def test_hostile_answers_read_api_down_with_one_clear_line(standin, tmp_path, mode, says):
    standin.mode = mode
    done, took = metrics(standin, tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert value(out, "dtr_api_up") == 0
    assert value(out, "dtr_exporter_collector_success", collector="dtr_api") == 1  # measured: the API is down
    assert value(out, "dtr_exporter_collector_success", collector="memory") == 1
    lines = [line for line in done.stderr.splitlines() if "DTR API not usable" in line]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert took < 15
    if mode == "huge":
        assert standin.huge_bytes_sent < HUGE_BYTES / 2  # it hung up early (socket buffers hold a few MB)


def test_external_driver_makes_local_disk_checks_not_applicable(standin, tmp_path):
    standin.driver = "s3"
    done = run_exporter("check", "--output", "json", "--config.file", config(tmp_path), "--dtr.url", standin.url,
                        "--dtr.username", standin.username, "--no-collector.docker",
                        env={**BASE_ENV, "DTR_PASSWORD": standin.password})
    assert done.returncode in (0, 1), done.stderr
    states = {(c["check"], c["severity"]): c for c in json.loads(done.stdout)["checks"]}
    for check in ("page_cache_hit_ratio", "storage_forecast", "storage_io", "inodes_free"):
        for (name, _), verdict in states.items():
            if name == check:
                assert verdict["state"] == "not_applicable" and "s3" in verdict["detail"], verdict
    assert states[("memory_total", "critical")]["state"] in ("ok", "fail")  # host checks still judged
    done = run_exporter("metrics", "--config.file", config(tmp_path), "--dtr.url", standin.url,
                        "--dtr.username", standin.username, "--no-collector.docker",
                        env={**BASE_ENV, "DTR_PASSWORD": standin.password})
    assert value(done.stdout, "dtr_sizing_check_state", check="storage_forecast", severity="critical",
                 state="not_applicable") == 1
    assert value(done.stdout, "dtr_sizing_check_ok", check="storage_forecast", severity="critical") is None


@pytest.mark.parametrize("args, env, says", [
    (["--dtr.url", "ftp://dtr.example"], {}, "dtr.url: 'ftp://dtr.example' is not an http(s) URL"),
    (["--dtr.url", "ftp://admin:pw@dtr.example"], {}, "dtr.url: no credentials in the URL"),
    (["--dtr.url", "https://dtr.example", "--dtr.username", "admin"], {"DTR_PASSWORD": ""},
     "dtr.username: needs a password"),
    (["--dtr.url", "https://dtr.example", "--dtr.ca-file", "/nonexistent/ca.pem"], {},
     "dtr.ca_file: cannot read /nonexistent/ca.pem"),
])
def test_unusable_dtr_settings_exit_2_with_one_line(args, env, says):
    done = run_exporter("metrics", *args, env={**BASE_ENV, **env})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr, done.stderr
    assert ":pw@" not in done.stderr
