"""Generate a synthetic Distribution store with the real layout: blobs as sparse files.

    python bench/storage_generate.py /var/tmp/store-100k 100000 [--repos 200] [--add]

``--add`` adds N more blobs to an existing store (new digests), as a push would.
Sizes are log-uniform between 1 KiB and 64 MiB; the files are sparse, so the store
takes inodes and directory blocks but almost no data blocks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
from pathlib import Path


def generate(root: Path, count: int, repos: int, seed: str) -> int:
    v2 = root / "docker" / "registry" / "v2"
    blobs = v2 / "blobs" / "sha256"
    rnd = random.Random(seed)
    total = 0
    for i in range(count):
        hexa = hashlib.sha256(f"{seed}-{i}".encode()).hexdigest()
        digest_dir = blobs / hexa[:2] / hexa
        os.makedirs(digest_dir, exist_ok=True)
        size = int(2 ** rnd.uniform(10, 26))
        fd = os.open(digest_dir / "data", os.O_CREAT | os.O_WRONLY, 0o644)
        os.ftruncate(fd, size)
        os.close(fd)
        total += size
    for r in range(repos):
        (v2 / "repositories" / f"team{r % 10}" / f"app{r}" / "_manifests").mkdir(parents=True, exist_ok=True)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("count", type=int)
    p.add_argument("--repos", type=int, default=200)
    p.add_argument("--add", action="store_true", help="add new blobs to an existing store")
    args = p.parse_args()
    seed = f"add-{os.urandom(4).hex()}" if args.add else "base"
    total = generate(args.root, args.count, args.repos, seed)
    print(f"{args.count} blobs, {total} bytes (sparse) under {args.root}")


if __name__ == "__main__":
    main()
