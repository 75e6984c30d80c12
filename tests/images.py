"""A local Debian base image for the image build test, made once with debootstrap.

Nothing is pulled from a container registry: debootstrap installs a minimal
bookworm with python3 from the machine's own apt mirror, and the result is
cached as a tarball under /var/cache/dtr-sizing-tests/, keyed by everything
that goes into it, so only the first run on a machine pays for it.

The machine's CA bundle replaces the image's own, so pip inside the build
trusts what the machine trusts (an egress proxy's CA included).

Run ``python -m tests.images`` to build the cache ahead of the tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import require

CACHE = Path(os.environ.get("DTR_SIZING_TEST_CACHE", "/var/cache/dtr-sizing-tests"))
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def apt_mirror() -> str:
    """The Debian mirror the machine's apt uses for ``SUITE`` (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and SUITE in parts[2:3] and "security" not in parts[1]:
                return [p for p in parts[1:] if not p.startswith("[")][0].rstrip("/")
    return DEFAULT_MIRROR


def cache_key(mirror: str) -> str:
    h = hashlib.sha256()
    for part in (SUITE, mirror, "minbase", *PACKAGES):
        h.update(part.encode() + b"\0")
    if HOST_CA_BUNDLE.exists():
        h.update(HOST_CA_BUNDLE.read_bytes())
    return h.hexdigest()[:16]


def debian_rootfs_tarball() -> Path:
    """The cached tarball of the base root filesystem, built on first use."""
    mirror = apt_mirror()
    tarball = CACHE / f"debian-{SUITE}-python3-{cache_key(mirror)}.tar"
    if tarball.exists():
        return tarball
    debootstrap = require("debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run builds it once; the other waits
        if tarball.exists():
            return tarball
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="build-") as tmp:
            root = Path(tmp) / "rootfs"
            try:
                result = subprocess.run(
                    [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror],
                    capture_output=True, text=True, timeout=1800)
            finally:
                _unmount_under(root)  # a failed debootstrap leaves /proc mounted: never rm -rf through it
            if result.returncode != 0:
                raise RuntimeError(f"debootstrap failed ({result.returncode}): {result.stdout[-2000:]}"
                                   f"{result.stderr[-2000:]}")
            _trim(root)
            partial = Path(tmp) / "rootfs.tar"
            subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial),
                            "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."],
                           check=True, capture_output=True, timeout=600)
            os.replace(partial, tarball)
        print(f"tests.images: built {tarball.name} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return tarball


def _unmount_under(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mountpoint in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True)


def _trim(root: Path) -> None:
    """Drop apt's downloads and lists; put in the machine's CA bundle."""
    for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / d).glob("*"):
            if entry.is_file():
                entry.unlink()
    if HOST_CA_BUNDLE.exists():
        target = root / "etc/ssl/certs/ca-certificates.crt"
        target.unlink(missing_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, target)


def import_base_image(dockerd, tag: str = "dtr-sizing-test/debian-python:bookworm") -> str:
    """The cached root filesystem imported into ``dockerd`` as ``tag``."""
    tarball = debian_rootfs_tarball()
    dockerd.docker("import", "--change", 'CMD ["python3"]', str(tarball), tag, timeout=600)
    return tag


if __name__ == "__main__":
    print(debian_rootfs_tarball())
