"""Bad input: config files, flags and web configs each give one line on stderr and exit 2.

Most cases run the CLI in-process (``exporter.cli.main``) for speed; a handful go
through the real subprocess. ``serve`` and sampling are replaced by a failing
stub, so a case that is wrongly accepted fails at once instead of serving.
"""

from __future__ import annotations

import logging
import math
import socket

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import cli, webconfig
from exporter import config as cfg
from tests.integration import tlscerts
from tests.support import run_exporter

PREFIX = "dtr-sizing-exporter: error: "

CONFIGS = {  # id: (file text, a word the message must name)
    "thresholds-list": ("thresholds: [1, 2]\n", "thresholds"),
    "unknown-top": ("bogus: 1\n", "bogus"),
    "unknown-check": ("thresholds:\n  memory_totl: 4GB\n", "memory_totl"),
    "size-word": ("thresholds:\n  memory_total: lots\n", "memory_total"),
    "size-negative": ("thresholds:\n  memory_total: -4\n", "memory_total"),
    "size-absurd": ("thresholds:\n  memory_total: 2000000PB\n", "memory_total"),
    "size-unit": ("thresholds:\n  memory_total: 4 furlongs\n", "memory_total"),
    "one-value-two-severities": ("thresholds:\n  disk_free: 30GB\n", "disk_free"),
    "warning-after-critical": ("thresholds:\n  disk_free: {warning: 10GB, critical: 20GB}\n", "disk_free"),
    "tolerance-huge": ("thresholds:\n  memory_total: {tolerance: 60%}\n", "memory_total"),
    "unknown-severity": ("thresholds:\n  memory_total: {minimum: 4GB}\n", "minimum"),
    "cores-word": ("thresholds:\n  cpu_cores: two\n", "cpu_cores"),
    "cores-inf": ("thresholds:\n  cpu_cores: .inf\n", "cpu_cores"),
    "cores-bool": ("thresholds:\n  cpu_cores: true\n", "cpu_cores"),
    "ratio-above-one": ("thresholds:\n  cpu_busy: {warning: 1.5}\n", "cpu_busy"),
    "ratio-percent-high": ("thresholds:\n  page_cache_hit_ratio: {warning: 150%}\n", "page_cache_hit_ratio"),
    "duration-date": ("thresholds:\n  storage_forecast: {warning: 2020-01-01}\n", "storage_forecast"),
    "listen-int": ("web:\n  listen_address: 9742\n", "web.listen_address"),
    "listen-port-range": ("web:\n  listen_address: 'localhost:99999'\n", "web.listen_address"),
    "web-unknown": ("web:\n  listen: ':9742'\n", "web.listen"),
    "interval-zero": ("collectors:\n  memory:\n    interval: 0s\n", "collectors.memory.interval"),
    "interval-long": ("collectors:\n  memory:\n    interval: 2d\n", "collectors.memory.interval"),
    "collector-unknown": ("collectors:\n  memry: {enabled: true}\n", "memry"),
    "collector-enabled-word": ("collectors:\n  memory:\n    enabled: yes-please\n", "collectors.memory.enabled"),
    "collector-list": ("collectors:\n  memory: [1]\n", "collectors.memory"),
    "collector-key": ("collectors:\n  cpu: {every: 5s}\n", "every"),
    "scan-rate-negative": ("storage:\n  scan_rate: -5\n", "storage.scan_rate"),
    "scan-rate-bool": ("storage:\n  scan_rate: true\n", "storage.scan_rate"),
    "scan-rate-nan": ("storage:\n  scan_rate: .nan\n", "storage.scan_rate"),
    "scan-shared-word": ("storage:\n  scan_shared: sometimes\n", "storage.scan_shared"),
    "storage-path-int": ("storage:\n  path: 5\n", "storage.path"),
    "pids-zero": ("registry:\n  pids: [0]\n", "registry.pids"),
    "process-names-string": ("registry:\n  process_names: registry\n", "registry.process_names"),
    "log-level": ("log:\n  level: verbose\n", "log.level"),
    "dtr-insecure-string": ("dtr:\n  insecure: 'yes'\n", "dtr.insecure"),
    "dtr-timeout-word": ("dtr:\n  timeout: forever\n", "dtr.timeout"),
    "docker-host-ssh": ("docker:\n  host: ssh://admin@node1\n", "docker.host"),
    "procfs-empty": ("paths:\n  procfs: ''\n", "paths.procfs"),
    "top-level-list": ("- a\n- b\n", "top level"),
    "top-level-scalar": ("just a string\n", "top level"),
    "yaml-unclosed": ("key: [unclosed\n", "invalid YAML"),
    "yaml-tab": ("web:\n\tlisten_address: x\n", "invalid YAML"),
    "yaml-unhashable-key": ("? [a, b]\n: 1\n", "invalid YAML"),
    "yaml-python-tag": ("thresholds: !!python/object:os.system {}\n", "invalid YAML"),
    "alias-nest": ("a: &a [x, x]\nb: &b [*a, *a]\nthresholds: [*b, *b]\n", "thresholds"),
}

FLAGS = {
    "listen-word": (["--web.listen-address", "nope"], "--web.listen-address"),
    "listen-port-zero": (["--web.listen-address", ":0"], "--web.listen-address"),
    "listen-port-high": (["--web.listen-address", ":70000"], "--web.listen-address"),
    "log-level": (["--log.level", "loud"], "--log.level"),
    "log-format": (["--log.format", "xml"], "--log.format"),
    "unknown-collector": (["--collector.nosuch"], "--collector.nosuch"),
    "collector-both": (["--no-collector.memory", "--collector.memory"], "--collector.memory"),
    "scan-rate-word": (["--storage.scan-rate", "fast"], "--storage.scan-rate"),
    "scan-rate-negative": (["--storage.scan-rate=-1"], "--storage.scan-rate"),
    "scan-rate-nan": (["--storage.scan-rate", "nan"], "--storage.scan-rate"),
    "dtr-insecure-value": (["--dtr.insecure=yes"], "--dtr.insecure"),
    "docker-host-path": (["--docker.host", "/var/run/docker.sock"], "docker.host"),  # unix:// missing
    "docker-host-no-port": (["--docker.host", "tcp://node1"], "docker.host"),
    "docker-host-tls": (["--docker.host", "https://node1:2376"], "docker.host"),
    "scan-shared": (["--storage.scan-shared", "maybe"], "--storage.scan-shared"),
    "unknown-flag-close": (["--web.listen=:1"], "--web.listen-address"),
    "unknown-command": (["serv"], "serv"),
    "output": (["check", "--output", "yaml"], "--output"),
    "output-without-check": (["--output", "json"], "--output"),
    "output-with-metrics": (["metrics", "--output", "table"], "--output"),
    "procfs-empty": (["--path.procfs", ""], "--path.procfs"),
    "config-missing": (["--config.file", "/nonexistent/exporter.yml"], "/nonexistent/exporter.yml"),
    "config-directory": (["--config.file", "/"], "cannot read"),
    "web-config-missing": (["--web.config.file", "/nonexistent/web.yml"], "/nonexistent/web.yml"),
    "extra-positional": (["check", "extra"], "extra"),
    "flag-without-value": (["--web.listen-address"], "--web.listen-address"),
}


def pem(certs, **tls):
    return {"tls_server_config": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **tls}}


WEB_CONFIGS = {  # id: (builder(certs, tmp) -> YAML-able object or raw text, a word the message must name)
    "top-list": (lambda c, t: [1, 2], "expected a mapping"),
    "unknown-top": (lambda c, t: {"tls_config": {}}, "tls_config"),
    "tls-string": (lambda c, t: {"tls_server_config": "on"}, "tls_server_config"),
    "tls-no-key": (lambda c, t: {"tls_server_config": {"cert_file": str(c.server_cert)}}, "key_file"),
    "tls-cert-missing": (lambda c, t: {"tls_server_config": {"cert_file": "/nonexistent.crt",
                                                              "key_file": str(c.server_key)}}, "tls_server_config"),
    "tls-cert-garbage": (lambda c, t: {"tls_server_config": {"cert_file": str(_garbage(t)),
                                                              "key_file": str(c.server_key)}}, "tls_server_config"),
    "tls-key-mismatch": (lambda c, t: {"tls_server_config": {"cert_file": str(c.server_cert),
                                                              "key_file": str(c.client_key)}}, "tls_server_config"),
    "tls-unknown-key": (lambda c, t: pem(c, ciphers="ALL"), "ciphers"),
    "client-auth-type": (lambda c, t: pem(c, client_auth_type="Bogus"), "client_auth_type"),
    "ca-without-policy": (lambda c, t: pem(c, client_ca_file=str(c.ca)), "client_ca_file"),
    "client-ca-missing": (lambda c, t: pem(c, client_auth_type="RequireAndVerifyClientCert",
                                           client_ca_file="/nonexistent-ca.crt"), "tls_server_config"),
    "min-version": (lambda c, t: pem(c, min_version="TLS14"), "min_version"),
    "max-version-number": (lambda c, t: pem(c, max_version=1.2), "max_version"),
    "min-above-max": (lambda c, t: pem(c, min_version="TLS13", max_version="TLS12"), "min_version"),
    "users-plaintext": (lambda c, t: {"basic_auth_users": {"alice": "hunter2"}}, "basic_auth_users.alice"),
    "users-truncated-hash": (lambda c, t: {"basic_auth_users": {"alice": "$2y$10$short"}}, "basic_auth_users.alice"),
    "users-int": (lambda c, t: {"basic_auth_users": 5}, "basic_auth_users"),
    "users-list": (lambda c, t: {"basic_auth_users": ["alice"]}, "basic_auth_users"),
    "users-colon": (lambda c, t: {"basic_auth_users": {"a:b": "$2y$10$" + "a" * 53}}, "basic_auth_users"),
    "header-unknown": (lambda c, t: {"http_server_config": {"headers": {"X-Custom": "1"}}}, "X-Custom"),
    "header-multiline": (lambda c, t: {"http_server_config": {"headers": {"X-Frame-Options": "a\nb"}}},
                         "X-Frame-Options"),
    "header-int": (lambda c, t: {"http_server_config": {"headers": {"X-Frame-Options": 1}}}, "X-Frame-Options"),
    "http2-word": (lambda c, t: {"http_server_config": {"http2": "maybe"}}, "http2"),
    "yaml-broken": (lambda c, t: "tls_server_config: {cert_file: [\n", "invalid YAML"),
}


def _garbage(tmp):
    path = tmp / "garbage.pem"
    path.write_text("not a certificate\n")
    return path


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tlscerts.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture(autouse=True)
def no_serving(monkeypatch):
    """A case wrongly accepted must fail here, not start a server or sample the host."""
    def refuse(*_):
        raise AssertionError("the bad input was accepted")
    monkeypatch.setattr(cli, "serve", refuse)
    monkeypatch.setattr(cli, "sample_once", refuse)
    handlers = logging.getLogger().handlers[:]
    yield
    logging.getLogger().handlers[:] = handlers  # main() points logging at capsys' stream


def assert_one_line(capsys, status: int, named: str) -> str:
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(PREFIX), err
    assert "Traceback" not in err
    assert named in err, err
    return err


@pytest.mark.parametrize("text,named", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("command", ["serve", "check"])
def test_bad_config_file(tmp_path, capsys, text, named, command):
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    assert_one_line(capsys, cli.main([command, "--config.file", str(path)]), named)


def test_bad_config_file_binary(tmp_path, capsys):
    path = tmp_path / "exporter.yml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert_one_line(capsys, cli.main(["--config.file", str(path)]), "cannot read")


@pytest.mark.parametrize("argv,named", FLAGS.values(), ids=FLAGS.keys())
def test_bad_flag(capsys, argv, named):
    assert_one_line(capsys, cli.main(argv), named)


@pytest.mark.parametrize("build,named", WEB_CONFIGS.values(), ids=WEB_CONFIGS.keys())
def test_bad_web_config(tmp_path, capsys, certs, build, named):
    raw = build(certs, tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    err = assert_one_line(capsys, cli.main(["--web.config.file", str(path)]), named)
    assert "hunter2" not in err  # a mistaken plaintext password is never echoed


SUBPROCESS = {
    "flag": (["--log.level", "loud"], "--log.level"),
    "config": (["check", "--config.file", "{tmp}/bad.yml"], "thresholds.memory_total"),
    "web-config": (["--web.config.file", "{tmp}/web.yml"], "basic_auth_users.alice"),
    "missing-config": (["metrics", "--config.file", "{tmp}/absent.yml"], "absent.yml"),
    "port-in-use": (["--web.listen-address", "127.0.0.1:{port}"], "cannot listen"),
}


@pytest.mark.parametrize("argv,named", SUBPROCESS.values(), ids=SUBPROCESS.keys())
def test_bad_input_through_the_real_process(tmp_path, argv, named):
    (tmp_path / "bad.yml").write_text("thresholds:\n  memory_total: lots\n")
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  alice: hunter2\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_exporter(*(a.format(tmp=tmp_path, port=port) for a in argv), timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX) and named in lines[0], done.stderr
    assert "hunter2" not in done.stderr


# --- generated configs: whatever the shape, a Config or one ConfigError line, nothing else ---

KEYS = st.sampled_from([*cfg.TOP_LEVEL, *(s.name for s in cfg.SETTINGS), "memory_total", "disk_free",
                        "cpu_cores", "cpu_busy", "storage_forecast", "inodes_free", "warning", "critical",
                        "tolerance", "memory", "storage", "enabled", "interval", "timeout", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.sampled_from(["4GB", "3.6GiB", "15s", "1h30m", "90%", "0.5", ":9742", "127.0.0.1:1",
                                     "auto", "debug", "json", "", "-1", "1e999", "NaN"]),
                    st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(VALUES, st.dictionaries(KEYS, VALUES, max_size=5)))
def test_generated_configs_parse_or_say_one_line(raw):
    try:
        config = cfg.apply_mapping(cfg.Config(), raw, "gen.yml: ")
    except cfg.ConfigError as err:
        assert "\n" not in str(err) and str(err).startswith("gen.yml: ")
    else:
        for by_severity in config.thresholds_in_force().values():
            assert all(math.isfinite(v) and v >= 0 for v in by_severity.values())


WEB_KEYS = st.sampled_from([*webconfig.TOP, *webconfig.TLS_KEYS, *webconfig.HEADERS, "headers", "http2",
                            "alice", "RequireAndVerifyClientCert", "TLS13"])
WEB_VALUES = st.recursive(st.one_of(SCALARS, st.sampled_from(["$2y$10$" + "a" * 53, "NoClientCert", "TLS12"])),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(WEB_KEYS, inner, max_size=4)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(WEB_VALUES, st.dictionaries(WEB_KEYS, WEB_VALUES, max_size=4)))
def test_generated_web_configs_parse_or_say_one_line(raw):
    try:
        webconfig.parse(raw, "web.yml: ")
    except cfg.ConfigError as err:
        assert "\n" not in str(err) and str(err).startswith("web.yml: ")
