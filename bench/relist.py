"""A changed prefix listed again (exporter.scan's streamed relisting), on 1 thread against 4, warm.

    python bench/relist.py /var/tmp/store-10m [--prefixes 64]

Each prefix's index is made from its listing first, so nothing is new and nothing removed: the
figure is the listing and the lookups alone, what a rescan past inotify's event limit pays per
prefix. Two rounds each, alternating.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.scan import _parallel, _unknown, digest_key  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("--prefixes", type=int, default=64, help="prefix directories to list (default 64)")
    args = p.parse_args()
    root = args.store / "docker/registry/v2/blobs/sha256"
    prefixes = sorted(str(root / name) for name in os.listdir(root))[:args.prefixes]
    keys = {path: b"".join(sorted(digest_key(n) for n in os.listdir(path))) for path in prefixes}
    for threads in (1, 4, 1, 4):
        started = time.monotonic()
        _parallel(lambda i: _unknown(prefixes[i], keys[prefixes[i]], set()), len(prefixes), threads)
        print(f"{threads} thread(s), {len(prefixes)} prefixes: {time.monotonic() - started:.2f} s", flush=True)


if __name__ == "__main__":
    main()
