"""Resident memory of the storage scan, then of the garbage estimate, in one process, on one store.

    .venv/bin/python bench/memory.py /var/tmp/store-3m [--scan-only] [--state-dir DIR]

The process imports both modules first, so what is printed is what each adds: VmRSS
before, after a full scan (``storage.scan_concurrency`` 4, the index in a private
temporary directory), after the first garbage estimate and after a second one (nothing
changed). One JSON line after the scan and one at the end. No ``serve``, no other
collector: the curve of what grows with the store, without the rest of the exporter.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.garbage import Estimator  # noqa: E402
from exporter.scan import Scanner, resolve_v2  # noqa: E402


def rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("--scan-only", action="store_true", help="stop after the scan")
    p.add_argument("--state-dir", help="where the estimator's database lives (default: a private temporary file)")
    args = p.parse_args()
    v2 = resolve_v2(args.store)
    out = {"start_mib": rss_mib()}
    scanner = Scanner(v2, concurrency=4)
    started = time.monotonic()
    out["blobs"] = scanner.scan().blobs
    out["scan_s"], out["after_scan_mib"] = time.monotonic() - started, rss_mib()
    print(json.dumps(out), flush=True)
    if args.scan_only:
        return
    estimator = Estimator(v2, state_dir=args.state_dir)
    for run in ("first", "second"):
        started = time.monotonic()
        estimate = estimator.estimate()
        out[f"{run}_estimate_s"], out[f"after_{run}_estimate_mib"] = time.monotonic() - started, rss_mib()
    out["manifests"] = estimate.manifests
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
