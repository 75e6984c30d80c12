"""TLS, mutual TLS, headers and live reload of --web.config.file, against a real exporter process."""

from __future__ import annotations

import shutil
import socket
import ssl
import time

import pytest
import requests
import yaml

from tests.integration import tlscerts
from tests.integration.web_harness import LoggedExporter
from tests.support import wait_for

HEADERS = {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000",
           "Content-Security-Policy": "default-src 'self'"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tlscerts.make(tmp_path_factory.mktemp("certs"))


def write_config(path, certs, **tls):
    config = {"tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **tls},
              "http_server_config": {"headers": HEADERS}}
    path.write_text(yaml.safe_dump(config))
    return path


def tls_probe(certs, client=True):
    cert = (str(certs.client_cert), str(certs.client_key)) if client else None
    return lambda e: requests.get(e.url + "/-/healthy", verify=str(certs.ca), cert=cert, timeout=2).ok


@pytest.fixture
def tls_exporter(tmp_path, certs):
    config = write_config(tmp_path / "web.yml", certs)
    exporter = LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log",
                              scheme="https", probe=tls_probe(certs, client=False))
    with exporter:
        yield exporter, config


@pytest.fixture
def mtls_exporter(tmp_path, certs):
    config = write_config(tmp_path / "web.yml", certs, client_auth_type="RequireAndVerifyClientCert",
                          client_ca_file=str(certs.ca))
    exporter = LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log",
                              scheme="https", probe=tls_probe(certs))
    with exporter:
        yield exporter


def test_tls_serves_metrics_with_certificate_made_here(tls_exporter, certs):
    exporter, _ = tls_exporter
    answer = requests.get(exporter.url + "/metrics", verify=str(certs.ca), timeout=5)
    assert answer.status_code == 200
    assert "dtr_exporter_build_info" in answer.text
    for name, value in HEADERS.items():
        assert answer.headers[name] == value


def test_headers_on_every_answer(tls_exporter, certs):
    exporter, _ = tls_exporter
    for path, status in (("/", 200), ("/-/healthy", 200), ("/nowhere", 404)):
        answer = requests.get(exporter.url + path, verify=str(certs.ca), timeout=5)
        assert answer.status_code == status
        assert answer.headers["X-Frame-Options"] == "deny", path
    post = requests.post(exporter.url + "/metrics", verify=str(certs.ca), timeout=5)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"


def test_plain_http_on_tls_port_gets_nothing(tls_exporter):
    exporter, _ = tls_exporter
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/" not in received and b"dtr_" not in received


def test_min_version_refuses_older_client(tmp_path, certs):
    config = write_config(tmp_path / "web.yml", certs, min_version="TLS13")
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log", scheme="https",
                        probe=tls_probe(certs, client=False)):
        pass  # the probe answered over TLS 1.3 (the client's default)
    old = ssl.create_default_context(cafile=str(certs.ca))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log2", scheme="https",
                        probe=tls_probe(certs, client=False)) as exporter:
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLError):
                old.wrap_socket(raw, server_hostname="127.0.0.1")


def test_mutual_tls_requires_a_verified_client_certificate(mtls_exporter, certs):
    url = mtls_exporter.url + "/metrics"
    answer = requests.get(url, verify=str(certs.ca), cert=(str(certs.client_cert), str(certs.client_key)), timeout=5)
    assert answer.status_code == 200 and "dtr_exporter_collector_success" in answer.text
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(url, verify=str(certs.ca), timeout=5)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(url, verify=str(certs.ca), cert=(str(certs.rogue_cert), str(certs.rogue_key)), timeout=5)


def test_reload_on_change_and_invalid_edit_keeps_last_good(tls_exporter, certs):
    exporter, config = tls_exporter
    get = lambda: requests.get(exporter.url + "/-/healthy", verify=str(certs.ca), timeout=5)  # noqa: E731
    assert get().headers["X-Frame-Options"] == "deny"

    raw = yaml.safe_load(config.read_text())
    raw["http_server_config"]["headers"]["X-Frame-Options"] = "sameorigin"
    config.write_text(yaml.safe_dump(raw))
    wait_for(lambda: get().headers["X-Frame-Options"] == "sameorigin", timeout=10, what="reload")

    config.write_text("tls_server_config: [this is not: a mapping\n")
    deadline = time.monotonic() + 3  # longer than the watcher's one-second check interval
    while time.monotonic() < deadline:
        answer = get()
        assert answer.status_code == 200 and answer.headers["X-Frame-Options"] == "sameorigin"
    wait_for(lambda: "web config not reloaded" in exporter.log(), timeout=5, what="log line")
    line = next(l for l in exporter.log().splitlines() if "web config not reloaded" in l)
    assert "invalid YAML" in line and "level=error" in line

    raw["tls_server_config"] = None  # turning TLS off at runtime would silently expose the port
    config.write_text(yaml.safe_dump(raw))
    wait_for(lambda: "needs a restart" in exporter.log(), timeout=5, what="TLS-off refusal")
    assert get().status_code == 200

    raw["tls_server_config"] = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
    raw["http_server_config"]["headers"]["X-Frame-Options"] = "deny"
    config.write_text(yaml.safe_dump(raw))
    wait_for(lambda: get().headers["X-Frame-Options"] == "deny", timeout=10, what="recovery after a fix")
    assert exporter.proc.poll() is None


def served_certificate(port: int, certs) -> bytes:
    context = ssl.create_default_context(cafile=str(certs.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)


def test_renewed_certificate_is_served_without_a_restart(tmp_path, certs):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    config = tmp_path / "web.yml"
    config.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "live.crt", "key_file": "live.key"}}))
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log", scheme="https",
                        probe=tls_probe(certs, client=False)) as exporter:
        first = served_certificate(exporter.port, certs)
        renewed = tlscerts.server_leaf(tmp_path, "renewed", certs)
        shutil.copy(renewed[1], key)  # key first: a half-done renewal must not break serving
        shutil.copy(renewed[0], cert)
        wait_for(lambda: served_certificate(exporter.port, certs) != first, timeout=10, what="the renewed certificate")
        assert requests.get(exporter.url + "/metrics", verify=str(certs.ca), timeout=5).status_code == 200
        assert exporter.proc.poll() is None


def test_stop_with_keep_alive_connections_open_is_clean(tmp_path, certs):
    config = write_config(tmp_path / "web.yml", certs)
    exporter = LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log", scheme="https",
                              probe=tls_probe(certs, client=False)).start()
    with requests.Session() as session:  # holds its connection open, idle, while the exporter stops
        assert session.get(exporter.url + "/metrics", verify=str(certs.ca), timeout=5).status_code == 200
        assert exporter.stop() == 0
    assert "level=error" not in exporter.log() and "Traceback" not in exporter.log()
    assert "msg=stopped" in exporter.log()
