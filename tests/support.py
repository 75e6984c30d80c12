"""Shared test helpers: real components, ports, polling."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require(binary: str) -> str:
    """The path of a real program the test drives; in CI its absence fails the test."""
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path:
        return path
    unavailable(f"{binary} is not installed (scripts/install-debs.sh installs it)")


def unavailable(message: str):
    """A test's real component or privilege is missing: a failure in CI, a skip on a laptop."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # the service may not be up yet
            last_error = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last_error}" if last_error else ""))


def stop_process(proc: subprocess.Popen | None, timeout: float = 15) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status (None: never started)."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode if proc else None


def exporter_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def run_exporter(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(exporter_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs)


class Exporter:
    """A real exporter process on a free loopback port."""

    def __init__(self, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["--web.listen-address", f"127.0.0.1:{self.port}", *args]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, ready: bool = True) -> "Exporter":
        import requests
        self.proc = subprocess.Popen(exporter_cmd(*self.args), cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        path = "/-/ready" if ready else "/-/healthy"
        wait_for(lambda: self.proc.poll() is None and requests.get(self.url + path, timeout=2).ok,
                 timeout=60, what=f"exporter {path}")
        return self

    def stop(self) -> int:
        status = stop_process(self.proc)
        return 0 if status is None else status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def push_digests(v2: Path, first: int, n: int) -> None:
    """Blobs number ``first`` to ``first + n - 1`` (of i % 7 bytes), spread over the 256 sha256 prefixes, each
    with its own 8-byte key."""
    for i in range(first, first + n):
        digest = f"{i % 256:02x}{i:014x}{'e' * 48}"
        (v2 / "blobs/sha256" / digest[:2] / digest).mkdir(parents=True)
        (v2 / "blobs/sha256" / digest[:2] / digest / "data").write_bytes(b"x" * (i % 7))


def inotify_queue() -> int:
    """The kernel's inotify queue per instance (fs.inotify.max_queued_events; 16,384 by default)."""
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
