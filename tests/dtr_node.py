"""A stand-in DTR 2.x node on a real dockerd: containers named and tagged as DTR names them.

``dtr-registry-<id>`` runs the real Debian ``docker-registry`` (Distribution)
binary with its store on the named volume ``dtr-registry-<id>`` mounted at
``/storage``, as DTR mounts it; the other components (api, garant, jobrunner,
nginx, notary-server, notary-signer, rethinkdb) are busybox ``sleep``: the
exporter only looks at their names, images, state and stats. Images are
``docker import``ed from local root filesystems tagged
``docker/dtr-<component>:<VERSION>``; nothing is pulled. Containers use host
networking (dockerd has no default bridge here), so the registry listens on a
free loopback port and serves its own Prometheus metrics
(``http.debug.prometheus``) on another, ``metrics_url``.
``DtrNode(base, network="dtr-ol")`` puts the other components on a
user-defined bridge network of that name instead (DTR's overlay, on one
node): Docker reports network counters only for a container with a network
namespace of its own.

Use the session fixture ``dtr_node`` (import it into a test module).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.dockerd import Dockerd, busybox_rootfs
from tests.support import free_port, require, wait_for

VERSION = "2.9.4"
SLEEPERS = ("api", "garant", "jobrunner", "nginx", "notary-server", "notary-signer", "rethinkdb")
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
"""


def registry_rootfs(target: Path) -> Path:
    """busybox plus Debian's docker-registry and the libc it links (ldd shows only libc)."""
    busybox_rootfs(target)
    binary = Path(require("docker-registry"))
    shutil.copy2(binary, target / "bin" / "registry")
    needed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    for line in needed.splitlines():
        path = next((p for p in line.split() if p.startswith("/")), None)
        if path:
            dest = target / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), dest)
    (target / "etc" / "docker" / "registry").mkdir(parents=True, exist_ok=True)
    (target / "etc" / "docker" / "registry" / "config.yml").write_text(REGISTRY_CONFIG)
    (target / "storage").mkdir(exist_ok=True)
    return target


def series(text: str, name: str) -> dict[frozenset, float]:
    """Every sample of metric ``name`` in an exposition, keyed by its label set."""
    return {frozenset(s.labels.items()): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


def value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``, or None."""
    found = [v for k, v in series(text, name).items() if set(labels.items()) <= k]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
    return found[0] if found else None


class DtrNode:
    """One DTR replica's containers on a private dockerd under ``base``."""

    def __init__(self, base: Path, network: str = "host"):
        self.base = Path(base)
        self.dockerd = Dockerd(self.base / "dockerd")
        self.replica_id = secrets.token_hex(6)
        self.port, self.metrics_port = free_port(), free_port()
        self.registry_url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.network = network  # of the components other than the registry, which serves on loopback

    @property
    def host(self) -> str:
        return self.dockerd.host

    def name(self, component: str) -> str:
        return f"dtr-{component}-{self.replica_id}"

    @property
    def volume(self) -> str:
        return f"dtr-registry-{self.replica_id}"

    def start(self) -> "DtrNode":
        self.dockerd.start()
        self.build_images()
        self.dockerd.docker("volume", "create", self.volume)
        self.run_registry()
        if self.network != "host":
            self.dockerd.docker("network", "create", self.network)
        for component in SLEEPERS:
            self.dockerd.docker("run", "-d", "--network", self.network, "--name", self.name(component),
                                f"docker/dtr-{component}:{VERSION}", "sleep", "86400")
        return self

    def build_images(self) -> None:
        with tempfile.TemporaryDirectory(dir=self.base) as tmp:
            small = self.dockerd.import_rootfs(busybox_rootfs(Path(tmp) / "busybox"), f"docker/dtr-api:{VERSION}")
            for component in SLEEPERS[1:]:
                self.dockerd.docker("tag", small, f"docker/dtr-{component}:{VERSION}")
            self.dockerd.import_rootfs(registry_rootfs(Path(tmp) / "registry"), f"docker/dtr-registry:{VERSION}",
                                       'CMD ["/bin/registry", "serve", "/etc/docker/registry/config.yml"]')

    def run_registry(self) -> None:
        """(Re)create the registry container, as a DTR upgrade or reconfigure does."""
        self.dockerd.docker("rm", "-f", self.name("registry"), check=False)
        self.dockerd.docker("run", "-d", "--network", "host", "--name", self.name("registry"),
                            "-v", f"{self.volume}:/storage", "-e", f"REGISTRY_HTTP_ADDR=127.0.0.1:{self.port}",
                            "-e", f"REGISTRY_HTTP_DEBUG_ADDR=127.0.0.1:{self.metrics_port}",
                            "-e", "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED=true",
                            "-e", "REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH=/metrics",
                            f"docker/dtr-registry:{VERSION}")
        wait_for(lambda: requests.get(self.registry_url + "/v2/", timeout=2).status_code == 200,
                 timeout=30, what="the registry in the dtr-registry container")

    @property
    def store(self) -> Path:
        """The volume's mount point: what the exporter should discover."""
        out = self.dockerd.docker("volume", "inspect", "-f", "{{.Mountpoint}}", self.volume).stdout
        return Path(out.strip())

    def restart_dockerd(self) -> None:
        """Start dockerd again after ``dockerd.kill()`` and bring every container back up."""
        self.dockerd.start()
        names = [self.name(c) for c in (*SLEEPERS, "registry")]
        self.dockerd.docker("start", *names)
        wait_for(lambda: requests.get(self.registry_url + "/v2/", timeout=2).status_code == 200,
                 timeout=30, what="the registry after dockerd restarted")

    def stop(self) -> None:
        if self.dockerd.proc is None:
            return
        if self.dockerd.proc.poll() is not None:  # killed by a test: bring it back to remove the containers
            with contextlib.suppress(Exception):
                self.dockerd.start()
        if self.dockerd.proc.poll() is None:
            names = [self.name(c) for c in (*SLEEPERS, "registry")]
            self.dockerd.docker("rm", "-f", *names, check=False, timeout=120)
            self.dockerd.docker("volume", "rm", "-f", self.volume, check=False)
            if self.network != "host":  # its bridge interface would outlive dockerd
                self.dockerd.docker("network", "rm", self.network, check=False)
        self.dockerd.stop()
        self._reap()

    def _reap(self) -> None:
        """SIGKILL what outlived dockerd: shims naming our base, container processes rooted in it.

        A dockerd killed with SIGKILL leaves its containerd shims and their
        containers running; only processes tied to this node's directory are touched.
        """
        base = str(self.base.resolve())
        killed = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                root = os.readlink(proc / "root")
            except OSError:
                continue
            if base in cmdline or root.startswith(base):
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(proc)
        wait_for(lambda: not any((p / "root").exists() for p in killed), timeout=30, what="reaped processes gone")
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mountpoint in sorted((m for m in mounts if m.startswith(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)


@pytest.fixture(scope="session")
def dtr_node():
    base = Path(tempfile.mkdtemp(prefix="dtr-node-", dir="/var/tmp"))
    node = DtrNode(base)
    try:
        yield node.start()
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)
