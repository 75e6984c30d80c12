"""Rescans of a big store after pushes of 0.1 % and 1 %, against one `du -s`.

    python bench/rescan.py /var/tmp/store-10m --push 109000 [--du]

In one process: a full scan by the exporter's scanner, then pushes of ``--push``/10 blobs (under
the kernel's inotify queue of 16,384 events), ``--push`` and ``--push`` again (past it at 10M:
the scanner's reader thread must have kept the names as they came, else every changed prefix is
listed again; the second time each prefix's index ends in keys appended unsorted), each
followed by a timed rescan. With ``--du``, one ``du -s`` of the store at the end, timed the
same way, on the same (warm) cache. Pushes are bench/garbage.py's: a twentieth of them
manifests, linked in 10,000 repositories. Used at 10M blobs (docs/performance.md, "10M, measured")."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from exporter.scan import Scanner  # noqa: E402
from garbage import generate  # noqa: E402


def rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("--push", type=int, required=True, help="blobs in the bigger pushes (1 %% of the store)")
    p.add_argument("--du", action="store_true", help="time one du -s of the store at the end")
    args = p.parse_args()
    v2 = args.store / "docker/registry/v2"
    with tempfile.TemporaryDirectory(dir=args.store.parent) as work:
        scanner = Scanner(v2, index_dir=Path(work) / "index")
        started = time.monotonic()
        result = scanner.scan()
        print(f"| full scan | {result.blobs} | {time.monotonic() - started:.1f} s | {result.files_examined} "
              f"| {rss_mib():.1f} MiB |", flush=True)
        for n in (args.push // 10, args.push, args.push):
            generate(v2, n, n // 20, 10_000, f"rescan-{time.time_ns()}")
            time.sleep(2.5)  # past the scanner's racy window: changed prefixes are not measured twice
            started = time.monotonic()
            result = scanner.scan()
            print(f"| rescan after +{n} | {result.blobs} | {time.monotonic() - started:.2f} s "
                  f"| {result.files_examined} | {rss_mib():.1f} MiB |", flush=True)
        scanner.close()
    if args.du:
        started = time.monotonic()
        subprocess.run(["du", "-s", str(args.store)], check=True, capture_output=True)
        print(f"| du -s | - | {time.monotonic() - started:.1f} s | - | - |", flush=True)


if __name__ == "__main__":
    main()
