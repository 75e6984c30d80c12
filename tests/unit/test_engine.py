"""The Engine API client's addresses and failures; its calls against a real dockerd are in
tests/integration/test_docker_dtr.py."""

from __future__ import annotations

import pytest

from exporter.engine import Engine, EngineError, parse_host
from tests.support import free_port


@pytest.mark.parametrize("host,parsed", [
    ("unix:///var/run/docker.sock", ("unix", "/var/run/docker.sock")),
    ("unix:///run/user/1000/docker.sock", ("unix", "/run/user/1000/docker.sock")),
    ("tcp://127.0.0.1:2375", ("tcp", ("127.0.0.1", 2375))),
    ("tcp://[::1]:2375", ("tcp", ("::1", 2375))),
    ("http://node1.example.com:2375/", ("tcp", ("node1.example.com", 2375))),
])
def test_accepted_addresses(host, parsed):
    assert parse_host(host) == parsed


@pytest.mark.parametrize("host", [
    "/var/run/docker.sock",  # the scheme is what says it is a socket
    "unix://var/run/docker.sock",  # relative: "var" would be a host name
    "tcp://node1",  # Docker's 2375/2376 are not guessed
    "tcp://node1:notaport",
    "tcp://node1:2375/v1.41",
    "https://node1:2376",
    "ssh://admin@node1",
    "npipe:////./pipe/docker_engine",
    "",
])
def test_refused_addresses_name_what_is_accepted(host):
    with pytest.raises(ValueError, match="unix:///path/to/docker.sock or tcp://host:port"):
        parse_host(host)


def test_a_missing_socket_is_one_line_naming_the_address_and_call(tmp_path):
    host = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(EngineError) as failed:
        Engine(host, timeout=1).containers()
    assert str(failed.value) == f"Docker Engine API at {host}: GET /containers/json?all=1: No such file or directory"


def test_a_closed_port_is_one_line():
    host = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(EngineError, match=f"^Docker Engine API at {host}: GET /containers/json.all=1: Connection refused$"):
        Engine(host, timeout=1).containers()
