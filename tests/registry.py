"""A real Distribution registry (Debian's docker-registry) on loopback, and a small v2 API client.

Import the ``registry`` fixture into a test module (``from tests.registry import registry``)
or use ``Registry(tmp_dir)`` as a context manager. Storage is the filesystem driver in ``<tmp_dir>/storage``; deletes are
enabled; the registry's own Prometheus metrics are served on ``metrics_url``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.support import free_port, require, stop_process, unavailable, wait_for

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.storage = self.workdir / "storage"
        self.config = self.workdir / "config.yml"
        self.port, self.debug_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.debug_port}/metrics"
        self.binary = require("docker-registry")
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()

    # --- process ------------------------------------------------------------------

    def start(self) -> "Registry":
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({  # JSON is YAML
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"127.0.0.1:{self.port}",
                     "debug": {"addr": f"127.0.0.1:{self.debug_port}",
                               "prometheus": {"enabled": True, "path": "/metrics"}}},
        }))
        self.log = open(self.workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([self.binary, "serve", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is None and self.http.get(self.url + "/v2/", timeout=2).ok,
                 timeout=30, what="docker-registry /v2/")
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        if self.proc:
            self.log.close()

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def garbage_collect(self) -> str:
        done = subprocess.run([self.binary, "garbage-collect", str(self.config)], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # --- Registry HTTP API v2 -------------------------------------------------------

    def _start_upload(self, repo: str) -> str:
        answer = self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=10)
        assert answer.status_code == 202, answer.text
        return urljoin(self.url, answer.headers["Location"])

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        location = self._start_upload(repo)
        sep = "&" if "?" in location else "?"
        answer = self.http.put(f"{location}{sep}digest={digest}", data=data, timeout=60,
                               headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == 201, answer.text
        return digest

    def abandon_upload(self, repo: str, data: bytes) -> str:
        """Start an upload, send ``data`` as one chunk and never finish it; returns its location."""
        location = self._start_upload(repo)
        answer = self.http.patch(location, data=data, timeout=60,
                                 headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == 202, answer.text
        return location

    def push_image(self, repo: str, tag: str, layer_sizes: list[int]) -> tuple[str, dict[str, int]]:
        """Random layers, a config and a schema-2 manifest; returns (manifest digest, every blob digest -> size)."""
        blobs: dict[str, int] = {}
        layers = []
        for size in layer_sizes:
            data = os.urandom(size)
            digest = self.push_blob(repo, data)
            blobs[digest] = size
            layers.append({"mediaType": LAYER, "size": size, "digest": digest})
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [layer["digest"] for layer in layers]}}).encode()
        config_digest = self.push_blob(repo, config)
        blobs[config_digest] = len(config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_V2, "config": {
            "mediaType": CONFIG_V1, "size": len(config), "digest": config_digest}, "layers": layers}).encode()
        answer = self.http.put(f"{self.url}/v2/{repo}/manifests/{tag}", data=manifest, timeout=30,
                               headers={"Content-Type": MANIFEST_V2})
        assert answer.status_code == 201, answer.text
        digest = answer.headers["Docker-Content-Digest"]
        assert digest == digest_of(manifest)
        blobs[digest] = len(manifest)  # the registry keeps the manifest as a blob too
        return digest, blobs

    def push_manifest(self, repo: str, reference: str, document: dict, media_type: str) -> str:
        """PUT a manifest or index by tag or digest; returns its digest."""
        body = json.dumps(document).encode()
        answer = self.http.put(f"{self.url}/v2/{repo}/manifests/{reference}", data=body, timeout=30,
                               headers={"Content-Type": media_type})
        assert answer.status_code == 201, answer.text
        assert answer.headers["Docker-Content-Digest"] == digest_of(body)
        return digest_of(body)

    def push_oci_image(self, repo: str, reference: str | None, layers: list[bytes],
                       platform: str = "amd64") -> tuple[str, dict[str, int]]:
        """Layers, a config and an OCI image manifest, by tag (or by digest when ``reference`` is None);
        returns (manifest digest, every blob digest -> size)."""
        blobs = {self.push_blob(repo, data): len(data) for data in layers}
        config = json.dumps({"architecture": platform, "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": list(blobs)}}).encode()
        config_digest = self.push_blob(repo, config)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
                    "layers": [{"mediaType": OCI_LAYER, "size": n, "digest": d} for d, n in blobs.items()]}
        blobs[config_digest] = len(config)
        body = json.dumps(manifest).encode()
        digest = self.push_manifest(repo, reference or digest_of(body), manifest, OCI_MANIFEST)
        blobs[digest] = len(body)
        return digest, blobs

    def push_oci_index(self, repo: str, tag: str, children: dict[str, str]) -> tuple[str, int]:
        """An OCI index of manifests already in ``repo`` ({platform architecture: digest}); (digest, size)."""
        entries = []
        for arch, digest in children.items():
            size = len(self.get_manifest(repo, digest))
            entries.append({"mediaType": OCI_MANIFEST, "size": size, "digest": digest,
                            "platform": {"architecture": arch, "os": "linux"}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.push_manifest(repo, tag, index, OCI_INDEX), len(json.dumps(index).encode())

    def get_manifest(self, repo: str, reference: str) -> bytes:
        answer = self.http.get(f"{self.url}/v2/{repo}/manifests/{reference}", timeout=10, headers={
            "Accept": ", ".join((MANIFEST_V2, OCI_MANIFEST, OCI_INDEX, MANIFEST_LIST))})
        assert answer.status_code == 200, answer.text
        return answer.content

    def retag(self, repo: str, reference: str, tag: str) -> str:
        """Point ``tag`` at the manifest ``reference`` names (GET then PUT, as `docker tag` + push does)."""
        answer = self.http.get(f"{self.url}/v2/{repo}/manifests/{reference}", timeout=10, headers={
            "Accept": ", ".join((MANIFEST_V2, OCI_MANIFEST, OCI_INDEX, MANIFEST_LIST))})
        assert answer.status_code == 200, answer.text
        put = self.http.put(f"{self.url}/v2/{repo}/manifests/{tag}", data=answer.content, timeout=30,
                            headers={"Content-Type": answer.headers["Content-Type"]})
        assert put.status_code == 201, put.text
        return put.headers["Docker-Content-Digest"]

    def mount_blob(self, repo: str, digest: str, source: str) -> None:
        """Cross-repository mount: ``repo`` links ``source``'s blob without a new upload."""
        answer = self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", timeout=10)
        assert answer.status_code == 201, answer.text

    def garbage_collect_dry_run(self, delete_untagged: bool = False) -> str:
        """`garbage-collect --dry-run` (with `--delete-untagged`): its whole output."""
        command = [self.binary, "garbage-collect", "--dry-run", str(self.config)]
        if delete_untagged:
            command.insert(3, "--delete-untagged")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def garbage_collect_untagged(self) -> str:
        done = subprocess.run([self.binary, "garbage-collect", "--delete-untagged", str(self.config)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def delete_manifest(self, repo: str, digest: str) -> None:
        answer = self.http.delete(f"{self.url}/v2/{repo}/manifests/{digest}", timeout=10)
        assert answer.status_code == 202, answer.text

    def pull_blob(self, repo: str, digest: str) -> int:
        """GET a blob through the registry; returns the bytes received (checked against the digest)."""
        hasher, got = hashlib.sha256(), 0
        with self.http.get(f"{self.url}/v2/{repo}/blobs/{digest}", stream=True, timeout=60) as answer:
            assert answer.status_code == 200, answer.text
            for chunk in answer.iter_content(1 << 20):
                hasher.update(chunk)
                got += len(chunk)
        assert "sha256:" + hasher.hexdigest() == digest
        return got

    def blob_file(self, digest: str) -> Path:
        alg, hexa = digest.split(":")
        return self.storage / "docker/registry/v2/blobs" / alg / hexa[:2] / hexa / "data"


@pytest.fixture
def registry(tmp_path):
    """A started registry in ``tmp_path``, stopped after the test."""
    with Registry(tmp_path) as started:
        yield started


@pytest.fixture
def disk_tmp():
    """A temporary directory on a disk-backed filesystem: page-cache tests cannot run on tmpfs,
    whose pages cannot be dropped (/tmp is tmpfs on many CI runners)."""
    path = Path(tempfile.mkdtemp(prefix="dtr-sizing-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def disk_registry(disk_tmp):
    """Like ``registry``, with its storage on a disk-backed filesystem."""
    with Registry(disk_tmp) as started:
        yield started


class LoggingRegistry(Registry):
    """A registry that logs every request at info level to ``registry.log``, as in production.

    ``log_format`` is Distribution's ``log.formatter``: ``text`` (logrus key=value) or ``json``;
    ``accesslog`` adds its Apache combined-format line per request. ``cgroup``: a directory made by
    ``memory_cgroup`` that the registry process joins before it starts.
    """

    def __init__(self, workdir: Path, log_format: str = "text", accesslog: bool = True,
                 cgroup: Path | None = None):
        super().__init__(workdir)
        self.log_format, self.accesslog, self.cgroup = log_format, accesslog, cgroup
        self.log_path = self.workdir / "registry.log"

    def start(self) -> "LoggingRegistry":
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({
            "version": 0.1,
            "log": {"level": "info", "formatter": self.log_format,
                    "accesslog": {"disabled": not self.accesslog}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "tests"},
        }))
        self.log = open(self.log_path, "ab")
        procs = self.cgroup / "cgroup.procs" if self.cgroup else None
        self.proc = subprocess.Popen([self.binary, "serve", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=(lambda: procs.write_text(str(os.getpid()))) if procs else None)
        wait_for(lambda: self.proc.poll() is None and self.http.get(self.url + "/v2/", timeout=2).ok,
                 timeout=30, what="docker-registry /v2/")
        return self

    def pull_blob(self, repo: str, digest: str) -> int:
        """As Registry.pull_blob, and returns once the registry has logged it: it writes "response completed"
        after the client has the last byte, so a reader of the log right after the pull could miss it."""
        before = self._completed(digest)
        got = super().pull_blob(repo, digest)
        wait_for(lambda: self._completed(digest) > before, timeout=10, what=f"the registry's log line for {digest}")
        return got

    def _completed(self, digest: str) -> int:
        return sum(1 for line in self.log_path.read_text(errors="replace").splitlines()
                   if digest in line and "response completed" in line)


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int):
    """A new memory cgroup limited to ``limit_bytes``, below this process's own (cgroup v1 or v2).

    Yields its directory; processes put in it must have exited before the block ends.
    """
    root = Path("/sys/fs/cgroup")
    v2 = (root / "cgroup.controllers").is_file()
    base = root if v2 else root / "memory"
    own = next((line.split(":", 2)[2].strip() for line in Path("/proc/self/cgroup").read_text().splitlines()
                if (line.startswith("0::") if v2 else "memory" in line.split(":")[1].split(","))), None)
    if own is None or not os.access(base / own.lstrip("/"), os.W_OK):
        unavailable("no writable memory cgroup hierarchy here (needs root and cgroup v1 memory or v2)")
    group = base / own.lstrip("/") / f"dtr-sizing-test-{os.getpid()}-{free_port()}"
    group.mkdir()
    try:
        (group / ("memory.max" if v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))
        yield group
    finally:
        group.rmdir()
