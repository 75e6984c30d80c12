"""The container image, built for real and run against this host, alone and as the Swarm stack.

A private dockerd (tests/dockerd.py) builds the Dockerfile on a Debian base
made locally with debootstrap (tests/images.py), so nothing is pulled from a
container registry; pip inside the build reaches PyPI over the host network.
The same dockerd then becomes a one-node swarm on loopback and runs
deploy/swarm/stack.yml with ``docker stack deploy``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from exporter import __version__
from tests.dockerd import Dockerd, busybox_rootfs
from tests.images import HOST_CA_BUNDLE, import_base_image
from tests.support import ROOT, free_port, wait_for

IMAGE = "dtr-sizing-exporter:test"
UID = "65534"
SWARM = ROOT / "deploy" / "swarm"
HOST_FLAGS = ["--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root"]


def _root_is_shared() -> bool:
    root = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4] == "/")
    return "shared:" in root or "master:" in root


def _host_mounts() -> list[str]:
    """The README's docker run mounts: host /proc, /sys and / read-only under /host.

    ``rslave`` (so volumes mounted later show up) needs / to be a shared or
    slave mount, as systemd makes it; a sandbox with a private / gets plain ``ro``.
    """
    propagation = ",rslave" if _root_is_shared() else ""
    return ["-v", "/proc:/host/proc:ro", "-v", "/sys:/host/sys:ro", "-v", f"/:/host/root:ro{propagation}"]


def _pip_build_args() -> list[str]:
    """The host's pip index, if it has one the container can reach, and the CA bundle path."""
    args = ["--build-arg", f"PIP_CERT={HOST_CA_BUNDLE}"]  # the base image carries the host's bundle there
    index = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                           capture_output=True, text=True).stdout.strip()
    if index.startswith(("http://", "https://")):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    return args


@pytest.fixture(scope="module")
def dockerd():
    base = Path(tempfile.mkdtemp(prefix="dtr-sizing-image-", dir="/var/tmp"))
    daemon = Dockerd(base, storage_driver="overlay2")
    try:
        yield daemon.start()
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def image(dockerd):
    base = import_base_image(dockerd)
    started = time.monotonic()
    build = dockerd.docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", *_pip_build_args(),
                           "-t", IMAGE, str(ROOT), timeout=900, check=False)
    assert build.returncode == 0, f"docker build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    sizes = [int(dockerd.docker("image", "inspect", "--format", "{{.Size}}", i).stdout) / 2**20 for i in (base, IMAGE)]
    print(f"image build took {time.monotonic() - started:.0f}s; base {sizes[0]:.0f} MiB, image {sizes[1]:.0f} MiB")
    return IMAGE


@pytest.fixture
def container(dockerd, image):
    port = free_port()
    name = f"dtr-sizing-exporter-{port}"
    dockerd.docker("run", "-d", "--name", name, "--network", "host", "--health-interval", "1s",
                   "-e", f"DTR_SIZING_HEALTHCHECK_URL=http://127.0.0.1:{port}/-/healthy",
                   *_host_mounts(), image, *HOST_FLAGS, f"--web.listen-address=127.0.0.1:{port}")
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        dockerd.docker("rm", "-f", name, check=False)


def _inspect(dockerd, name: str, template: str) -> str:
    return dockerd.docker("inspect", "-f", template, name).stdout.strip()


def _host_memtotal() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_image_serves_host_metrics_as_non_root_and_stops_cleanly(dockerd, container):
    name, url = container
    wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, timeout=60, what="the first sampling pass")
    body = requests.get(f"{url}/metrics", timeout=5).text
    samples = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
    assert float(samples["dtr_memory_total_bytes"]) == _host_memtotal()  # read through /host/proc
    for collector in ("memory", "cpu", "filesystem"):
        assert float(samples[f'dtr_exporter_collector_success{{collector="{collector}"}}']) == 1

    pid = int(_inspect(dockerd, name, "{{.State.Pid}}"))
    status = Path(f"/proc/{pid}/status").read_text()
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [UID] * 4, status
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[0].startswith(b"/opt/dtr-sizing-exporter/bin/python")
    assert argv[1] == b"/opt/dtr-sizing-exporter/bin/dtr-sizing-exporter"  # the ENTRYPOINT, as PID 1

    wait_for(lambda: _inspect(dockerd, name, "{{.State.Health.Status}}") == "healthy",
             timeout=30, what="the HEALTHCHECK to pass")

    started = time.monotonic()
    dockerd.docker("stop", "--time", "20", name)
    elapsed = time.monotonic() - started
    assert _inspect(dockerd, name, "{{.State.ExitCode}}") == "0"
    assert elapsed < 5, f"docker stop took {elapsed:.1f}s: SIGTERM was not handled"


def test_image_holds_only_the_installed_package(dockerd, image):
    probe = ("import exporter, importlib.util, os; print(exporter.__file__); "
             "print(importlib.util.find_spec('pip') is None, os.path.exists('/src'), os.getuid())")
    out = dockerd.docker("run", "--rm", "--network", "host", "--entrypoint",
                         "/opt/dtr-sizing-exporter/bin/python", image, "-c", probe).stdout.split()
    assert out[0].startswith("/opt/dtr-sizing-exporter/lib/"), out
    assert out[1:] == ["True", "False", UID], "pip or the sources were left in the image, or it runs as root"
    labels = json.loads(dockerd.docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == "dtr-sizing-exporter"


def test_image_rejects_a_bad_flag_in_one_line(dockerd, image):
    result = dockerd.docker("run", "--rm", "--network", "host", image, "--path.procs=/host/proc", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--path.procfs" in result.stderr, result.stderr


@pytest.fixture
def swarm(dockerd):
    dockerd.docker("swarm", "init", "--listen-addr", f"127.0.0.1:{free_port()}", "--advertise-addr", "127.0.0.1")
    try:
        node = dockerd.docker("node", "ls", "-q").stdout.strip()
        dockerd.docker("node", "update", "--label-add", "dtr=true", node)  # README: label the DTR nodes
        yield dockerd
    finally:
        dockerd.docker("swarm", "leave", "--force", check=False)


def _samples(url: str) -> dict[str, float]:
    body = requests.get(f"{url}/metrics", timeout=5).text
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in body.splitlines() if line and line[0] != "#")}


def test_swarm_stack_deploys_with_its_config_and_the_docker_socket(swarm, image, tmp_path):
    """stack.yml plus the opt-in docker-socket.yml on a real swarm, beside a stand-in DTR container."""
    stack = (SWARM / "stack.yml").read_text()
    if not _root_is_shared():  # see _host_mounts: the only change to the file
        stack = stack.replace(", bind: {propagation: rslave}", "")
    (tmp_path / "stack.yml").write_text(stack)
    # beside the stack file, as ./config.yml: the relative path the stack names
    (tmp_path / "config.yml").write_text("thresholds:\n  disk_free: {warning: 123GB, critical: 20GB}\n")
    swarm.import_rootfs(busybox_rootfs(tmp_path / "busybox"), "busybox:test")
    swarm.docker("run", "-d", "--name", "dtr-registry-0123456789ab", "--network", "host", "busybox:test",
                 "sleep", "600")
    port = free_port()
    env = {"DTR_SIZING_IMAGE": image, "DTR_SIZING_LISTEN": f"127.0.0.1:{port}",
           "DOCKER_SOCKET": str(swarm.socket), "DOCKER_GID": str(swarm.socket.stat().st_gid)}
    try:
        swarm.docker("stack", "deploy", "-c", str(tmp_path / "stack.yml"), "-c", str(SWARM / "docker-socket.yml"),
                     "dtrs", env=env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, timeout=90, what="the stack's exporter")
        samples = _samples(url)
        assert samples['dtr_sizing_threshold{check="disk_free",severity="warning"}'] == 123e9  # the Swarm config
        assert samples["dtr_memory_total_bytes"] == _host_memtotal()
        up = {k: v for k, v in samples.items() if k.startswith("dtr_container_up{") and 'component="registry"' in k}
        assert list(up.values()) == [1.0], f"the socket did not reach dockerd: {up}"
        task = swarm.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=dtrs_exporter").stdout.split()
        pid = int(_inspect(swarm, task[0], "{{.State.Pid}}"))
        uids = next(l.split()[1:] for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Uid:"))
        assert uids == [UID] * 4
    finally:
        swarm.docker("stack", "rm", "dtrs", check=False)
        swarm.docker("rm", "-f", "dtr-registry-0123456789ab", check=False)
        wait_for(lambda: not swarm.docker("ps", "-aq", "--filter", "label=com.docker.stack.namespace=dtrs").stdout.strip(),
                 timeout=60, what="the stack's containers to go")
