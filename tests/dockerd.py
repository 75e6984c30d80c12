"""A real dockerd for the tests, in its own directories, on its own socket.

The machine has no bridge networking or iptables for us, so dockerd runs with
those off and the vfs storage driver; containers use host networking. Images
come from ``docker import`` of a local root filesystem: nothing is pulled.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.support import require, stop_process, wait_for

DOCKER = "/usr/bin/docker"  # Debian's docker.io client; /usr/local/bin/docker is not ours


class Dockerd:
    """dockerd under ``base``: data, exec root, pidfile and socket all private to it."""

    def __init__(self, base: Path, storage_driver: str = "vfs"):
        self.base = Path(base)
        # overlay2 works here too and makes ``docker build`` several times faster than
        # vfs, which copies the whole root filesystem for every layer.
        self.storage_driver = storage_driver
        self.data_root = self.base / "data"
        self.exec_root = self.base / "exec"
        self.socket = self.base / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen | None = None
        self.log = self.base / "dockerd.log"

    @property
    def cli(self) -> list[str]:
        return [DOCKER, "-H", self.host]

    def docker(self, *args: str, check: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, **kw.pop("env", {}), "DOCKER_BUILDKIT": "0"}  # env: extra variables
        return subprocess.run([*self.cli, *args], check=check, capture_output=True, text=True,
                              timeout=timeout, env=env, **kw)

    def start(self) -> "Dockerd":
        binary = require("dockerd")
        require("containerd")
        for d in (self.data_root, self.exec_root):
            d.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self._forget_dead_containerd()
        self.proc = subprocess.Popen(
            [binary, "--iptables=false", "--ip6tables=false", "--bridge=none", f"--storage-driver={self.storage_driver}",
             f"--data-root={self.data_root}", f"--exec-root={self.exec_root}",
             f"--pidfile={self.base / 'docker.pid'}", "-H", self.host,
             "--containerd-namespace=dtr-sizing-tests", "--containerd-plugins-namespace=dtr-sizing-tests-p"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.proc.poll() is None and self.docker("version", check=False, timeout=10).returncode == 0,
                 timeout=60, interval=0.3, what=f"dockerd on {self.socket} (log {self.log})")
        return self

    def _forget_dead_containerd(self) -> None:
        """After ``kill()`` the managed containerd may linger as a zombie whose pidfile makes a new
        dockerd wait a minute for it; a pidfile naming no live process is removed."""
        pidfile = self.exec_root / "containerd" / "containerd.pid"
        try:
            state = Path(f"/proc/{int(pidfile.read_text())}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            state = "gone"
        if state in ("Z", "X", "gone"):
            pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would; containers keep running under containerd's shims."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._cleanup_mounts()

    def stop(self) -> None:
        stop_process(self.proc, timeout=60)
        self._cleanup_mounts()

    def _cleanup_mounts(self) -> None:
        netns = self.exec_root / "netns" / "default"
        if netns.exists():
            subprocess.run(["umount", str(netns)], capture_output=True)

    def import_rootfs(self, rootfs: Path, tag: str, *changes: str) -> str:
        """``docker import`` of a directory tree as image ``tag``."""
        with tempfile.NamedTemporaryFile(suffix=".tar", dir=self.base) as tar_file:
            with tarfile.open(tar_file.name, "w") as tar:
                for entry in sorted(rootfs.iterdir()):
                    tar.add(entry, arcname=entry.name)
            args = [a for c in changes for a in ("--change", c)]
            self.docker("import", *args, tar_file.name, tag)
        return tag


def busybox_rootfs(target: Path) -> Path:
    """A minimal root filesystem: busybox-static with its applets linked in /bin."""
    busybox = require("busybox")
    bin_dir = target / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(busybox), bin_dir / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = bin_dir / applet
        if not link.exists():
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "proc", "sys", "dev", "var/lib"):
        (target / d).mkdir(parents=True, exist_ok=True)
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    return target
