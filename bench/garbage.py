"""Time the reclaimable-space estimate on a synthetic store, against `du -s`, and again after 1 % new pushes.

    python bench/garbage.py /var/tmp/garbage-100k 100000 5000 [--repos 200] [--state-dir DIR]

Blobs are sparse files with the real layout (as bench/storage_generate.py
makes them); manifests are real schema 2 JSON referencing 2-12 of them, linked
in repositories with tags on four in five; blobs no manifest picked are
garbage. The estimate is timed with its own blob walk (exporter.garbage.BlobSizes),
both passes on a warm page cache, like `du`; then a fresh estimator checks that the
incremental pass gives the same answer as one from scratch. RSS growth is measured from
before the estimator is made, so its SQLite database (cache, sorts) counts.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.garbage import Estimator  # noqa: E402
from exporter.scan import RACY_SECONDS  # noqa: E402


def write_blob(v2: Path, data: bytes | None, size: int, name: str, write: bool = True) -> str:
    hexa = hashlib.sha256(data if data is not None else name.encode()).hexdigest()
    if not write:
        return "sha256:" + hexa
    directory = v2 / "blobs/sha256" / hexa[:2] / hexa
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "data", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    if data is not None:
        os.write(fd, data)
    else:
        os.ftruncate(fd, size)  # sparse: inodes and directory blocks, almost no data blocks
    os.close(fd)
    return "sha256:" + hexa


def link(directory: Path, digest: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "link").write_text(digest)


def generate(v2: Path, blobs: int, images: int, repos: int, seed: str, part: int = 0, parts: int = 1) -> None:
    """Write a store; with ``parts`` > 1 this process writes only blob and image numbers ``part`` modulo
    ``parts`` (the layer blobs' names and sizes are the same as one process's; the images draw their own)."""
    rnd = random.Random(seed)
    pool = [write_blob(v2, None, int(2 ** rnd.uniform(10, 26)), f"{seed}-{i}", i % parts == part)
            for i in range(blobs - images)]
    if parts > 1:
        rnd = random.Random(f"{seed}/{part}")
    for i in range(part, images, parts):
        repo = v2 / "repositories" / f"team{i % repos % 10}" / f"app{i % repos}"
        layers = rnd.sample(pool, rnd.randint(2, 12))
        document = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": layers[0], "size": 1},
                    "layers": [{"digest": d, "size": 1} for d in layers[1:]]}
        digest = write_blob(v2, json.dumps(document).encode(), 0, "")
        for d in layers:
            link(repo / "_layers/sha256" / d[7:], d)
        link(repo / "_manifests/revisions/sha256" / digest[7:], digest)
        if rnd.random() < 0.8:
            link(repo / "_manifests/tags" / f"{seed}-{i}/current", digest)


def generate_parallel(v2: Path, blobs: int, images: int, repos: int, seed: str, jobs: int) -> None:
    """``generate`` split over ``jobs`` processes (a 10M store is hours in one)."""
    if jobs <= 1:
        return generate(v2, blobs, images, repos, seed)
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pool.starmap(generate, [(v2, blobs, images, repos, seed, part, jobs) for part in range(jobs)])


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(what: str, run) -> float:
    time.sleep(RACY_SECONDS + 0.1)  # let directories just written settle, as in a scan some time later
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    print(f"{what}: {seconds:.3f} s{'' if result is None else '  ' + str(result)}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("blobs", type=int)
    p.add_argument("manifests", type=int)
    p.add_argument("--repos", type=int, default=200)
    p.add_argument("--state-dir", help="where the estimator's database lives (default: a private temporary file)")
    args = p.parse_args()
    v2 = args.root / "docker/registry/v2"
    if not (v2 / "blobs").is_dir():
        generate(v2, args.blobs, args.manifests, args.repos, "base")
    du = timed("du -s", lambda: subprocess.run(["du", "-s", str(args.root)], check=True,
                                                capture_output=True).stdout.split()[0].decode())
    before = rss_kib()  # the database (sqlite3, its 2 MiB page cache) counts too
    estimator = Estimator(v2, state_dir=args.state_dir)

    def estimate():
        e = estimator.estimate()
        return (f"blobs={e.blobs} unreferenced={e.unreferenced.blobs} untagged={e.untagged.blobs} "
                f"parsed={e.parsed} errors={e.errors}")

    first = timed("first estimate", estimate)
    after_first = rss_kib()
    generate(v2, args.blobs // 100, args.manifests // 100, args.repos, f"add-{os.urandom(4).hex()}")
    second = timed("second estimate (1 % new pushes)", estimate)
    print(f"first / du: {first / du:.2f}   first / second: {first / second:.1f}x")
    print(f"RSS: {before} KiB before, +{after_first - before} KiB after the first estimate, "
          f"+{rss_kib() - before} KiB after the second")
    scratch = Estimator(v2)
    fresh = scratch.estimate()
    scratch.close()
    same = dataclasses.replace(fresh, parsed=0) == dataclasses.replace(estimator.estimate(), parsed=0)
    print(f"incremental equals from scratch: {same}")


if __name__ == "__main__":
    main()
