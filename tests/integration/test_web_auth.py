"""Basic auth from --web.config.file (bcrypt), against a real exporter process; no secret leaks."""

from __future__ import annotations

import base64
import concurrent.futures
import time

import bcrypt
import pytest
import requests
import yaml

from exporter import webconfig
from tests.integration.web_harness import LoggedExporter
from tests.support import wait_for

USER, PASSWORD = "prometheus", "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    config = tmp / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {USER: HASH, "other": HASH},
                                      "http_server_config": {"headers": {"X-Content-Type-Options": "nosniff"}}}))
    probe = lambda e: requests.get(e.url + "/-/healthy", timeout=2).status_code == 401  # noqa: E731
    with LoggedExporter("--web.config.file", str(config), "--log.level", "debug",
                        log_path=tmp / "log", probe=probe) as running:
        yield running


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("nobody", PASSWORD), (USER, ""), (USER.upper(), PASSWORD)])
def test_refused_without_the_right_password(exporter, auth):
    answer = requests.get(exporter.url + "/metrics", auth=auth, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "dtr_" not in answer.text


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Basic"])
def test_malformed_authorization_is_401_not_500(exporter, header):
    answer = requests.get(exporter.url + "/metrics", headers={"Authorization": header}, timeout=10)
    assert answer.status_code == 401


def test_right_password_gets_200_and_the_cache_makes_repeats_cheap(exporter, record_property):
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        answer = requests.get(exporter.url + "/metrics", auth=(USER, PASSWORD), timeout=10)
        timings.append(time.perf_counter() - start)
        assert answer.status_code == 200 and "dtr_exporter_build_info" in answer.text
    # measured, not asserted: the first request pays one bcrypt, the rest hit the cache
    record_property("first_ms", round(timings[0] * 1000, 2))
    record_property("cached_median_ms", round(sorted(timings[1:])[2] * 1000, 2))
    print(f"auth timing: first {timings[0] * 1000:.1f} ms, cached {[round(t * 1000, 1) for t in timings[1:]]} ms")
    for path in ("/", "/-/healthy", "/-/ready"):
        assert requests.get(exporter.url + path, timeout=10).status_code == 401
        assert requests.get(exporter.url + path, auth=(USER, PASSWORD), timeout=10).status_code == 200


def test_wrong_password_flood_does_not_stall_a_scrape(exporter):
    requests.get(exporter.url + "/metrics", auth=(USER, PASSWORD), timeout=10)  # into the cache
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        flood = [pool.submit(requests.get, exporter.url + "/metrics", auth=(USER, f"guess{i}"), timeout=30)
                 for i in range(48)]
        time.sleep(0.05)  # let the guesses reach the server first
        start = time.perf_counter()
        answer = requests.get(exporter.url + "/metrics", auth=(USER, PASSWORD), timeout=10)
        elapsed = time.perf_counter() - start
        assert all(f.result().status_code == 401 for f in flood)
    assert answer.status_code == 200
    assert elapsed < 1.0, f"a cached scrape waited {elapsed:.2f}s behind 48 bcrypt checks"


def test_no_secret_in_any_answer_or_log_line(exporter):
    for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nowhere"):
        for auth in (None, (USER, PASSWORD), (USER, "wrong-guess-123")):
            answer = requests.get(exporter.url + path, auth=auth, timeout=10)
            blob = answer.text + "".join(f"{k}: {v}" for k, v in answer.headers.items())
            for secret in (PASSWORD, HASH, HASH[7:29], "wrong-guess-123", base64.b64encode(PASSWORD.encode()).decode()):
                assert secret not in blob, (path, auth)
    log = exporter.log()
    assert "level=debug" in log or "level=info" in log
    for secret in (PASSWORD, HASH, "wrong-guess-123", basic(USER, PASSWORD)[6:]):
        assert secret not in log


def test_invalid_users_at_reload_are_logged_without_the_value(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"basic_auth_users": {USER: HASH}}))
    probe = lambda e: requests.get(e.url + "/-/healthy", timeout=2).status_code == 401  # noqa: E731
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log", probe=probe) as running:
        config.write_text(yaml.safe_dump({"basic_auth_users": {USER: "plain-text-password-oops"}}))
        wait_for(lambda: "web config not reloaded" in running.log(), timeout=10, what="refused reload")
        assert requests.get(running.url + "/metrics", auth=(USER, PASSWORD), timeout=10).status_code == 200
        assert requests.get(running.url + "/metrics", auth=(USER, "plain-text-password-oops"),
                            timeout=10).status_code == 401
        assert "plain-text-password-oops" not in running.log()
        assert "basic_auth_users.prometheus" in running.log()


def test_verified_password_is_cached_and_only_the_right_one():
    config = webconfig.parse({"basic_auth_users": {USER: HASH}})
    good, bad = basic(USER, PASSWORD), basic(USER, "nope")
    assert config.cached(good) is None  # needs a bcrypt the first time
    assert config.authorized(good) is True
    assert config.cached(good) is True
    assert config.authorized(bad) is False
    assert config.cached(bad) is None  # a failure is never cached as success
    assert config.cached(None) is False and config.cached("Basic ???") is False
    assert webconfig.parse({}).cached(None) is True  # no users: open
