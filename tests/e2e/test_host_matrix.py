"""The host matrix: the real CLI's verdicts on each distribution and kernel DTR runs on.

Each tests/fixtures/hosts/<name>/ is a profile (proc/, sys/, profile.json, run as
tests/conftest.py's profile_cmd runs the recorded profiles) plus expected.json,
the verdicts that host must get. Every host runs twice: with the exporter on
the host (a systemd service) and with the exporter in a container limited to
0.25 CPU, its in-container/ overlay (its own /proc/self/cgroup, and on cgroup
v2 a private cgroup namespace that rewrites every /proc/<pid>/cgroup). The
verdicts describe DTR's host, so both runs must agree with expected.json.
tests/fixtures/hosts/README.md says what each host is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import foundation_only, run_profile
from tests.support import FIXTURES

HOSTS_DIR = FIXTURES / "hosts"
HOSTS = sorted(p.name for p in HOSTS_DIR.iterdir() if (p / "expected.json").is_file())


def variant(name: str, where: str, tmp_path: Path) -> Path:
    """The host's tree with the exporter ``on-host`` or ``in-container`` (its overlay copied over it)."""
    target = tmp_path / name
    shutil.copytree(HOSTS_DIR / name, target, symlinks=True, ignore=shutil.ignore_patterns("in-container"))
    if where == "in-container":
        shutil.copytree(HOSTS_DIR / name / "in-container", target, symlinks=True, dirs_exist_ok=True)
    return target


def verdicts(report: dict) -> dict:
    cores = [c["observed"] for c in report["checks"] if c["check"] == "cpu_cores"]
    return {
        "checks": {f"{c['check']}/{c['severity']}": c["state"] for c in report["checks"]},
        "dtr_cpu_cores": cores[0] if cores else None,
        "collectors_ok": {name: s["ok"] for name, s in report["collectors"].items()},
    }


def test_every_host_has_a_fixture():
    assert HOSTS == ["rhel7", "rhel8", "sles15", "ubuntu1804", "ubuntu2004", "ubuntu2204"]


@pytest.mark.parametrize("where", ["on-host", "in-container"])
@pytest.mark.parametrize("name", HOSTS)
def test_verdicts_describe_dtrs_host(name, where, tmp_path):
    done = run_profile(variant(name, where, tmp_path), "check", "--output", "json", *foundation_only())
    assert done.stdout, done.stderr
    got = {**verdicts(json.loads(done.stdout)), "exit_status": done.returncode}
    assert got == json.loads((HOSTS_DIR / name / "expected.json").read_text()), done.stderr
