"""Scan benchmark: full and incremental scans against du -s over the same tree, and peak memory.

    python bench/storage_scan.py /var/tmp/store-1m [--cold] [--concurrency N] [--runs 3] [--json]

Steps, in one run: (1) full scan by the exporter's scanner vs ``du -s``, best of ``--runs``
each, both warm, and with --cold (root) also both after dropping caches before each run; (2) add
1 % new blobs, incremental rescan vs ``du -s``; (3) peak resident memory of a process running the
storage collector on the store, against the same process idle (after imports, before the scan),
and of a whole exporter. ``--concurrency`` is storage.scan_concurrency for every step (default:
the exporter's). Prints a Markdown table for docs/performance.md (``--json``: one JSON object, for
bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from exporter.scan import CONCURRENCY  # noqa: E402 (after the path is set)

MEASURE = r"""
import json, sys, time, resource
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from exporter.collectors import Context, Found
from exporter.collectors.storage import StorageCollector
from exporter.config import Config
def rss():
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            yield line.split()[0][:-1], int(line.split()[1]) * 1024
idle = dict(rss())["VmRSS"]
collector = StorageCollector(Context(config=Config(**json.loads(sys.argv[3]))))
store = Found(storage_path=Path(sys.argv[1]))
started = time.monotonic()
r = collector.collect(store)
first = time.monotonic() - started
started = time.monotonic()
again = collector.collect(store)
second = time.monotonic() - started
print(json.dumps({"idle_rss": idle, "peak_rss": dict(rss())["VmHWM"], "blobs": r.blobs,
                  "first": first, "second": second, "second_listed": again.scan_prefixes_changed}))
"""


def exporter_rss(store: Path, flags: tuple[str, ...] = ()) -> tuple[float, float, float]:
    """(RSS once the first scan is served, peak RSS, seconds to the first scan) of a real exporter."""
    import requests
    sys.path.insert(0, str(ROOT))
    from tests.support import exporter_cmd, free_port
    port = free_port()
    proc = subprocess.Popen(exporter_cmd("--web.listen-address", f"127.0.0.1:{port}", "--storage.path", str(store),
                                         "--log.level", "error", *flags), cwd=ROOT)
    started = time.monotonic()
    try:
        while True:
            try:
                if b"dtr_storage_scan_timestamp_seconds{" in requests.get(
                        f"http://127.0.0.1:{port}/metrics", timeout=5).content:
                    break
            except requests.RequestException:
                pass  # not listening yet
            time.sleep(0.2)
        took = time.monotonic() - started
        status = dict(line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        kib = lambda key: int(status[key].split()[0]) / 1024  # noqa: E731
        return kib("VmRSS"), kib("VmHWM"), took
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(cmd: list[str], cold: bool, runs: int = 3) -> tuple[float, list[str]]:
    """Best of ``runs`` wall-clock times (each after dropping caches when cold, after an untimed run when
    warm) and every run's output."""
    best, outs = float("inf"), []
    if not cold:
        subprocess.run(cmd, capture_output=True, check=True)  # warm: fill the cache first, untimed
    for _ in range(runs):
        if cold:
            drop_caches()
        started = time.monotonic()
        outs.append(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        best = min(best, time.monotonic() - started)
    return best, outs


def scan_cmd(store: Path, concurrency: int) -> list[str]:
    code = ("import sys, time, json; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
            "from exporter.scan import Scanner, resolve_v2; "
            "s = Scanner(resolve_v2(Path(sys.argv[1])), concurrency=int(sys.argv[3])); "
            "t = time.monotonic(); r = s.scan(); print(json.dumps([r.blobs, time.monotonic() - t])); s.close()")
    return [sys.executable, "-c", code, str(store), str(ROOT), str(concurrency)]


def full_rows(store: Path, concurrency: int, cold: bool, runs: int) -> list[tuple[str, str, float, float]]:
    du, _ = timed(["du", "-s", str(store)], cold, runs)
    ours, out = timed(scan_cmd(store, concurrency), cold, runs)
    blobs = json.loads(out[0])[0]
    inside = min(json.loads(o)[1] for o in out)
    mode = "cold" if cold else "warm"
    return [(f"full scan, {mode}", f"{blobs} blobs", ours, du),
            (f"full scan, {mode}, without interpreter start-up", f"{blobs} blobs", inside, du)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store", type=Path)
    p.add_argument("--cold", action="store_true", help="also time both full scans on a dropped page cache (root)")
    p.add_argument("--concurrency", type=int, default=CONCURRENCY, help="storage.scan_concurrency")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each full scan; the best counts")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args()
    rows = full_rows(args.store, args.concurrency, False, args.runs)
    if args.cold:
        rows += full_rows(args.store, args.concurrency, True, args.runs)
    blobs = int(rows[0][1].split()[0])

    # incremental: a scanner in one process, scan, add 1 %, rescan; du over the grown tree
    code = ("import sys, time, json, subprocess; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
            "from exporter.scan import Scanner, resolve_v2; "
            "s = Scanner(resolve_v2(Path(sys.argv[1])), concurrency=int(sys.argv[5])); "
            "s.scan(); subprocess.run([sys.executable, sys.argv[3], sys.argv[1], sys.argv[4], '--add', "
            "'--repos', '0'], check=True, capture_output=True); time.sleep(2.5); "  # past the racy window
            "t = time.monotonic(); r = s.scan(); d = time.monotonic() - t; "
            "print(json.dumps([d, r.blobs, r.prefixes_changed, r.files_examined]))")
    added = max(1, blobs // 100)
    out = subprocess.run([sys.executable, "-c", code, str(args.store), str(ROOT),
                          str(HERE / "storage_generate.py"), str(added), str(args.concurrency)],
                         capture_output=True, text=True, check=True).stdout
    inc, inc_blobs, listed, examined = json.loads(out)
    du_after, _ = timed(["du", "-s", str(args.store)], False, runs=1)
    rows.append(("incremental rescan after +1 %", f"{inc_blobs} blobs, {listed} prefixes changed, "
                 f"{examined} entries examined", inc, du_after))

    settings = json.dumps({"scan_concurrency": args.concurrency})
    mem = json.loads(subprocess.run([sys.executable, "-c", MEASURE, str(args.store), str(ROOT), settings],
                                    capture_output=True, text=True, check=True).stdout)
    empty = args.store.parent / f"{args.store.name}-empty"
    empty.mkdir(exist_ok=True)
    flags = ("--storage.scan-concurrency", str(args.concurrency))
    idle_rss, idle_peak, _ = exporter_rss(empty, flags)
    rss, peak, first = exporter_rss(args.store, flags)
    if args.json:
        print(json.dumps({"steps": rows, "collector": mem, "exporter": {
            "idle_rss_mib": idle_rss, "idle_peak_mib": idle_peak, "rss_mib": rss, "peak_mib": peak,
            "first_scan_served_seconds": first}}))
        return
    print(f"store {args.store}, storage.scan_concurrency {args.concurrency}; cold: caches dropped before each "
          f"run of both\n")
    print("| step | store | exporter | du -s | du / exporter |")
    print("| --- | --- | --- | --- | --- |")
    for step, what, ours, du in rows:
        print(f"| {step} | {what} | {ours:.3f} s | {du:.3f} s | {du / ours:.1f}x |")
    print(f"\nstorage collector, one process: idle RSS {mem['idle_rss'] / 2**20:.1f} MiB, peak RSS "
          f"{mem['peak_rss'] / 2**20:.1f} MiB (+{(mem['peak_rss'] - mem['idle_rss']) / 2**20:.1f} MiB) over a "
          f"first scan of {mem['blobs']} blobs ({mem['first']:.2f} s) and a rescan ({mem['second']:.3f} s, "
          f"{mem['second_listed']} prefixes changed)")
    print(f"whole exporter (all default collectors): with an empty store RSS {idle_rss:.1f} MiB, peak "
          f"{idle_peak:.1f} MiB; with this store RSS {rss:.1f} MiB, peak {peak:.1f} MiB "
          f"(+{peak - idle_peak:.1f} MiB over the idle peak), first scan served after {first:.1f} s")


if __name__ == "__main__":
    main()
