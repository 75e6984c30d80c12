"""The Swarm stack file, read as data: flags, mounts, placement, config.

The real deployment (``docker stack deploy`` on a one-node swarm, which also
validates the file against the compose schema built into the Docker CLI)
is in test_image.py, next to the image it runs.
"""

from __future__ import annotations

import re

import pytest
import yaml

from exporter import __version__, cli
from tests.support import ROOT

SWARM = ROOT / "deploy" / "swarm"


def expand(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} and ${VAR:?message} interpolation."""
    env = env or {}

    def one(match: re.Match) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        assert op != ":?", f"{name} is required: {rest}"
        return rest or ""
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, text)


def service(path: str = "stack.yml", env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(expand((SWARM / path).read_text(), env))["services"]["exporter"]


def test_command_flags_are_accepted_by_the_exporter():
    command = service()["command"]
    config_target = service()["configs"][0]["target"]
    args = [f"--config.file={SWARM / 'config.yml'}" if a == f"--config.file={config_target}" else a for a in command]
    assert args != command, "--config.file does not point at the Swarm config's target"
    parsed, config = cli.load_config(args)
    assert parsed.command == "serve"
    assert (config.procfs, config.sysfs, config.rootfs) == ("/host/proc", "/host/sys", "/host/root")
    assert config.listen_address == ":9742"
    assert config.state_dir == "/var/lib/dtr-sizing-exporter"


def test_host_mounts_are_read_only_under_host():
    volumes = {v["target"]: v for v in service()["volumes"]}
    for source, target in (("/proc", "/host/proc"), ("/sys", "/host/sys"), ("/", "/host/root")):
        assert volumes[target]["type"] == "bind" and volumes[target]["source"] == source
        assert volumes[target]["read_only"] is True
    assert volumes["/host/root"]["bind"]["propagation"] == "rslave"
    writable = [t for t, v in volumes.items() if not v.get("read_only")]
    assert writable == ["/var/lib/dtr-sizing-exporter"] and volumes[writable[0]]["type"] == "volume"


def test_global_on_dtr_nodes_on_the_node_network():
    stack = yaml.safe_load(expand((SWARM / "stack.yml").read_text()))
    exporter = stack["services"]["exporter"]
    assert exporter["deploy"]["mode"] == "global"
    assert "node.labels.dtr == true" in exporter["deploy"]["placement"]["constraints"]
    assert stack["networks"][exporter["networks"][0]] == {"external": True, "name": "host"}
    assert exporter["image"].endswith(f":{__version__}")
    assert "ports" not in exporter  # the routing mesh would hand Prometheus a random node
    assert stack["configs"]["config"]["file"] == "./config.yml"


def test_docker_socket_is_opt_in_read_only_and_keeps_the_user():
    assert not [v for v in service()["volumes"] if "docker.sock" in v["source"]]
    override = service("docker-socket.yml", {"DOCKER_GID": "999"})
    assert override["user"] == "65534:999"
    (socket,) = override["volumes"]
    assert socket["target"] == "/var/run/docker.sock" and socket["read_only"] is True
    with pytest.raises(AssertionError, match="DOCKER_GID is required"):
        service("docker-socket.yml")


def test_expand_follows_compose_interpolation():
    assert expand("${A:-x}") == "x" and expand("${A:-x}", {"A": "y"}) == "y"
    assert expand("a${B}c", {"B": "b"}) == "abc"
