"""A real Distribution registry (Debian's docker-registry) on loopback, and a small v2 API client.

Import the ``registry`` fixture into a test module (``from tests.registry import registry``)
or use ``Registry(tmp_dir)`` as a context manager. Storage is the filesystem driver in ``<tmp_dir>/storage``; deletes are
enabled; the registry's own Prometheus metrics are served on ``metrics_url``.
"""

from __future__ import annotations

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

from tests.support import free_port, require, stop_process, wait_for

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


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
