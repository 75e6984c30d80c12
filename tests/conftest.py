"""Shared fixtures: the recorded host profiles and running the real CLI on them.

A profile (tests/fixtures/profiles/<name>/) holds recorded proc/ and sys/ trees
and profile.json. Free space cannot be recorded in /proc, so ``profile_cmd``
runs the exporter in a private mount namespace (``unshare --mount``) where a
real tmpfs of the profile's size is mounted over the directory holding
Docker's data root: statvfs then reports real numbers of the profile's size,
and nothing is visible outside the namespace. That needs root; under CI=true
not being root is a failure, elsewhere a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from exporter.collectors import DEFAULTS, Context
from tests.support import FIXTURES, ROOT, exporter_cmd, require, unavailable

PROFILES = ("vm4g", "small", "large", "container")
FOUNDATION = ("memory", "cpu", "filesystem", "diskio")


def profile_dir(name: str | Path) -> Path:
    """A recorded profile by name, or any directory laid out like one (tests/fixtures/hosts/)."""
    return name if isinstance(name, Path) else FIXTURES / "profiles" / name


def profile_spec(name: str | Path) -> dict:
    return json.loads((profile_dir(name) / "profile.json").read_text())


def profile_context(name: str) -> Context:
    """A collector Context on the profile's proc and sys trees (no free-space numbers: see module doc)."""
    spec = profile_spec(name)
    args = dict(zip(spec["args"][::2], spec["args"][1::2]))
    return Context(procfs=profile_dir(name) / "proc", sysfs=profile_dir(name) / "sys",
                   rootfs=Path(args.get("--path.rootfs", "/")))


def foundation_only() -> list[str]:
    """Flags that leave only this issue's collectors on, whatever others add to DEFAULTS."""
    return [f"--{'' if n in FOUNDATION else 'no-'}collector.{n}" for n in DEFAULTS]


def profile_cmd(name: str | Path, *args: str) -> list[str]:
    """The exporter command on profile ``name``, inside a namespace with the profile's tmpfs."""
    if os.geteuid() != 0:
        message = "profile runs mount a tmpfs in a private mount namespace, which needs root"
        unavailable(message)
    unshare = require("unshare")
    spec = profile_spec(name)
    base = profile_dir(name)
    script = ["set -e"]
    for mountpoint, opts in spec["tmpfs"].items():
        script.append(f"mount -t tmpfs -o size={opts['size']},nr_inodes={opts['nr_inodes']} "
                      f"dtr-fixture-{base.name} {mountpoint}")
    script += [f"mkdir -p {d}" for d in spec["dirs"]]
    script.append('exec "$@"')
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", "\n".join(script), "sh",
            *exporter_cmd(*args, "--path.procfs", str(base / "proc"), "--path.sysfs", str(base / "sys"),
                          *spec["args"])]


def run_profile(name: str | Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(profile_cmd(name, *args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def profile_run():
    """Runs of the CLI on a profile with only this issue's collectors, each done once per session."""
    results: dict[tuple[str, ...], subprocess.CompletedProcess] = {}

    def get(name: str, *args: str) -> subprocess.CompletedProcess:
        key = (name, *args)
        if key not in results:
            results[key] = run_profile(name, *args, *foundation_only())
        return results[key]
    return get
