"""Steady-state resident memory of the storage scan and garbage estimate, over rescans, in one process.

    .venv/bin/python bench/steady.py STORE [--rounds 3] [--manifests N] [--repos N] [--src DIR] [--scan-only]

What ``serve`` does with the two store-walking collectors, without the rest: glibc capped
at 2 malloc arenas, each run on a fresh thread, malloc_trim after it when the sampler would
trim (exporter.sampler); a full scan, a first estimate, then ``--rounds`` of 1 % more blobs and
manifests (bench/garbage.py's generate, in a child process so its memory is not counted)
followed by a rescan and an estimate. After each step one JSON line: VmRSS and the
anonymous part (smaps_rollup) as growth over the start, Python's obmalloc arenas in use,
SQLite's own heap (sqlite3_memory_used), glibc's heap in use and free, and the step's seconds;
the last line after one more trim. The store grows by the rounds. ``--src``: import the
exporter from another tree (the code before a change, for an A/B in one sitting).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def smaps() -> dict[str, float]:
    text = Path("/proc/self/smaps_rollup").read_text()
    get = lambda key: int(re.search(rf"^{key}:\s+(\d+)", text, re.M).group(1)) / 1024  # noqa: E731
    return {"rss": get("Rss"), "anon": get("Anonymous")}


def arenas() -> int:
    """obmalloc arenas in use, from sys._debugmallocstats (written to fd 2)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    return int(re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text).group(1).replace(",", ""))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def malloc_mib() -> tuple[float, float]:
    """glibc's heap: (MiB in use, MiB free but kept), over every arena."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return round((info.uordblks + info.hblkhd) / 2**20, 2), round(info.fordblks / 2**20, 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--manifests", type=int, help="manifests in the store (default blobs/20)")
    p.add_argument("--repos", type=int, default=3000)
    p.add_argument("--src", type=Path, default=HERE.parent)
    p.add_argument("--scan-only", action="store_true")
    args = p.parse_args()
    sys.path.insert(0, str(args.src))
    from exporter import sampler  # noqa: E402
    from exporter.garbage import Estimator  # noqa: E402
    from exporter.scan import Scanner, resolve_v2  # noqa: E402

    libc = ctypes.CDLL(None)
    libc.mallopt(-8, 2)  # M_ARENA_MAX, as exporter.cli
    sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    v2 = resolve_v2(args.store)
    state = Path(tempfile.mkdtemp(prefix="steady-", dir="/var/tmp"))
    base = smaps()

    worth_trimming = getattr(sampler, "worth_trimming", lambda name, seconds: seconds >= sampler.TRIM_AFTER)

    def run(work, name):
        box = {}
        thread = threading.Thread(target=lambda: box.update(out=work()))
        started = time.monotonic()
        thread.start()
        thread.join()
        seconds = time.monotonic() - started
        if worth_trimming(name, seconds):
            sampler._trim_heap()
        return box["out"], seconds

    def report(step: str, seconds: float, **extra) -> None:
        now = smaps()
        print(json.dumps({"step": step, "s": round(seconds, 3), "rss": round(now["rss"] - base["rss"], 2),
                          "anon": round(now["anon"] - base["anon"], 2), "arenas": arenas(),
                          "sqlite_mib": round(sqlite.sqlite3_memory_used() / 2**20, 2),
                          "malloc_used_free": malloc_mib(), **extra}), flush=True)

    report("start", 0.0)
    scanner = Scanner(v2, concurrency=4, index_dir=state / "index")
    result, seconds = run(scanner.scan, "storage")
    report("scan", seconds, blobs=result.blobs)
    estimator = None if args.scan_only else Estimator(v2, state_dir=state)
    if estimator:
        est, seconds = run(estimator.estimate, "garbage")
        report("estimate", seconds, reclaim=est.unreferenced.bytes)
    blobs = result.blobs
    manifests = args.manifests or blobs // 20
    for n in range(args.rounds):
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
                        "from garbage import generate; generate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "
                        "int(sys.argv[5]), sys.argv[6])", str(HERE), str(v2), str(blobs // 100),
                        str(manifests // 100), str(args.repos), f"steady-{os.getpid()}-{n}"], check=True)
        time.sleep(2.1)  # scan.RACY_SECONDS
        result, seconds = run(scanner.scan, "storage")
        report(f"rescan{n + 1}", seconds, blobs=result.blobs)
        if estimator:
            est, seconds = run(estimator.estimate, "garbage")
            report(f"estimate{n + 1}", seconds, reclaim=est.unreferenced.bytes, untagged=est.untagged.bytes)
    started = time.monotonic()
    sampler._trim_heap()
    report("trimmed", time.monotonic() - started)
    subprocess.run(["rm", "-rf", str(state)], check=False)


if __name__ == "__main__":
    main()
