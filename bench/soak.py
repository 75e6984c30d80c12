"""Soak: resident memory of a real `serve` over rescans of a store that keeps growing.

    .venv/bin/python bench/soak.py /var/tmp/soak-1m [--blobs 1000000] [--minutes 60] [--interval 60]
                                   [--grow 0.001] [--rate 0.5] [--dtr-node] [--json]

The exporter runs with every default collector, the garbage and workload collectors
included, ``--storage.path`` on the store, a state directory, a registry request log
(``--registry.log-path``) and the storage and garbage collectors' intervals cut to
``--interval`` seconds (default 60: a rescan a minute), from a config file. Steps:
(1) when the store has no blobs yet, bench/garbage.py's ``generate`` makes one of
``--blobs`` blobs and blobs/20 manifests in ``--repos`` repositories; (2) a day of
request log over 5 % of its blobs (bench/workload.py's format) at ``--rate`` blob GETs a
second, kept growing at that rate; (3) once the first storage scan, garbage estimate and
hot set are served: every ``--interval`` seconds ``--grow`` (0.1 %) more blobs and
manifests are pushed into the store, a scrape every 15 s (as Prometheus), VmRSS
sampled every 10 s for ``--minutes``. Reports the RSS once the first scan is served,
the maximum, the last, and the least-squares slope of RSS over the second half
of the window (MiB per hour: the drift; near 0 means steady) and the storage and garbage
collectors' pass durations (the first, then the median of the later ones, each seen in a
scrape; a pass may start before a push has finished). ``--json``: one JSON object.

``--dtr-node``: a real dockerd runs a stand-in DTR node (tests/dtr_node.py: DTR's eight
containers by name, the real Distribution registry among them) and ``serve`` gets
``--docker.host`` on it, so the docker and traffic collectors find what they find on a
DTR node, and what the docker collector costs counts (its Engine API calls, container
stats on a small pool of threads). Without it those collectors report the failure (no
Docker here) and stay light.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from garbage import generate, generate_parallel  # noqa: E402
from scrape import free_port, rss_mib, wait_up  # noqa: E402
from workload import Appender, hot_digests, write_day  # noqa: E402

SAMPLE = 10  # seconds between RSS samples
SCRAPE = 15  # seconds between scrapes
# what must be in /metrics before the window starts: the first scan, garbage estimate and hot set
FIRST = ("dtr_storage_blobs{", "dtr_storage_reclaimable_bytes{", "dtr_storage_hot_bytes{")
TIMED = ("storage", "garbage")  # collectors whose pass durations are reported


def durations(body: str) -> dict[str, float]:
    """``dtr_exporter_collector_duration_seconds`` of the TIMED collectors in one scrape."""
    out = {}
    for line in body.splitlines():
        if line.startswith("dtr_exporter_collector_duration_seconds{"):
            for name in TIMED:
                if f'collector="{name}"' in line:
                    out[name] = float(line.split()[-1])
    return out


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600 if var else 0.0


def config_file(work: Path, interval: float) -> Path:
    path = work / "soak.yml"
    path.write_text(f"collectors:\n  storage: {{interval: {interval:g}s}}\n  garbage: {{interval: {interval:g}s}}\n")
    return path


def blob_count(v2: Path) -> int:
    """Blobs generated so far, from the prefix directories' entries (fast enough at a million)."""
    root = v2 / "blobs/sha256"
    return sum(1 for prefix in root.iterdir() for _ in prefix.iterdir()) if root.is_dir() else 0


def grow(v2: Path, blobs: int, repos: int, seed: str) -> None:
    """``blobs`` more blobs, a twentieth of them manifests (at least 20 and 1: a manifest picks up to 12 layers)."""
    blobs = max(20, blobs)
    generate(v2, blobs, max(1, blobs // 20), repos, seed)


def soak(store: Path, log: Path, work: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = work / "state"
    state.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
           f"--config.file={config_file(work, args.interval)}", f"--storage.path={store}",
           f"--storage.state-dir={state}", f"--registry.log-path={log}", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL)
    v2 = store / "docker/registry/v2"
    samples: list[tuple[float, float]] = []
    passes: dict[str, list[float]] = {name: [] for name in TIMED}  # each new duration seen, in order

    def note(body: str) -> None:
        for name, seconds in durations(body).items():
            if not passes[name] or passes[name][-1] != seconds:
                passes[name].append(seconds)

    try:
        started = time.monotonic()
        wait_up(url + "/-/ready", proc, 3600)
        with requests.Session() as session:
            while not all(w in (body := session.get(url + "/metrics", timeout=30).text) for w in FIRST):
                if proc.poll() is not None:
                    sys.exit(f"bench/soak.py: the exporter exited {proc.returncode}")
                time.sleep(1)
            note(body)
            first_after = time.monotonic() - started
            first_rss = rss_mib(proc.pid)
            print(f"first scan, estimate and hot set served after {first_after:.0f} s, RSS {first_rss:.1f} MiB",
                  file=sys.stderr, flush=True)
            added, begun = 0, time.monotonic()
            run = f"soak-{int(time.time())}"  # each run's pushes are new blobs, even on a store an earlier run grew
            next_sample, next_scrape, next_grow = begun, begun, begun + args.interval
            while (now := time.monotonic()) - begun < args.minutes * 60:
                if now >= next_grow:
                    grow(v2, round(args.blobs_now * args.grow), args.repos, f"{run}-{added}")
                    added += 1
                    next_grow += args.interval
                if now >= next_scrape:
                    response = session.get(url + "/metrics", timeout=30, headers={"Accept-Encoding": "gzip"})
                    response.raise_for_status()
                    note(response.text)
                    next_scrape += SCRAPE
                if now >= next_sample:
                    samples.append((now - begun, rss_mib(proc.pid)))
                    next_sample += SAMPLE
                if proc.poll() is not None:
                    sys.exit(f"bench/soak.py: the exporter exited {proc.returncode}")
                time.sleep(max(0.0, min(next_sample, next_scrape, next_grow) - time.monotonic()))
            body = session.get(url + "/metrics", timeout=30).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    span = samples[-1][0] if samples else 0.0
    second_half = [(t, v) for t, v in samples if t >= span / 2]
    scans = next((line.split()[-1] for line in body.splitlines()
                  if line.startswith("dtr_storage_blobs{")), "?")
    failing = sorted(line.split('collector="')[1].split('"')[0] for line in body.splitlines()
                     if line.startswith("dtr_exporter_collector_success{") and float(line.split()[-1]) == 0)
    return {"blobs_at_start": args.blobs_now, "blobs_at_end": scans, "pushes": added,
            "minutes": span / 60, "interval_seconds": args.interval, "first_scan_served_seconds": first_after,
            "first_scan_rss_mib": first_rss, "max_rss_mib": max(v for _, v in samples),
            "end_rss_mib": samples[-1][1], "drift_mib_per_hour": slope_per_hour(second_half),
            "pass_seconds": {name: [round(v, 3) for v in seen] for name, seen in passes.items()},
            "failing_at_end": failing,
            "samples": [[round(t), round(v, 2)] for t, v in samples]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path, help="the store (made here with --blobs when it has no blobs yet)")
    p.add_argument("--blobs", type=int, default=1_000_000, help="blobs to generate when the store is empty")
    p.add_argument("--repos", type=int, default=10_000, help="repositories to generate them in (default 10000)")
    p.add_argument("--jobs", type=int, default=1, help="processes generating the store (default 1)")
    p.add_argument("--minutes", type=float, default=60, help="the soak window (default 60)")
    p.add_argument("--interval", type=float, default=60, help="storage and garbage intervals, and pushes, s")
    p.add_argument("--grow", type=float, default=0.001, help="share of the blobs pushed each interval (0.1 %%)")
    p.add_argument("--rate", type=float, default=0.5, help="blob GETs a second in the request log")
    p.add_argument("--dtr-node", action="store_true",
                   help="serve against a real dockerd running a stand-in DTR node (root, dockerd installed)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args()
    v2 = args.store / "docker/registry/v2"
    args.blobs_now = blob_count(v2)
    if args.blobs_now == 0:
        started = time.monotonic()
        generate_parallel(v2, args.blobs, args.blobs // 20, args.repos, "base", args.jobs)
        args.blobs_now = args.blobs
        print(f"generated {args.blobs} blobs in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix="soak-run-", dir=args.store.parent))
    try:
        log = work / "registry.log"
        hot = hot_digests(args.blobs_now - args.blobs_now // 20, 0.05)  # generate's names for its layer blobs
        write_day(log, hot, args.rate, time.time())
        appender = Appender(log, hot, args.rate)
        appender.start()
        node = None
        try:
            if args.dtr_node:
                from tests.dtr_node import DtrNode
                node = DtrNode(work / "node").start()
            result = soak(args.store, log, work, args, [f"--docker.host={node.host}"] if node else [])
        finally:
            appender.stop.set()
            appender.join()
            if node:
                node.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    print(f"\nstore {args.store}: {result['blobs_at_start']} blobs at start, {result['blobs_at_end']} at the end "
          f"({result['pushes']} pushes of {args.grow:.1%}); rescans every {args.interval:g} s, "
          f"{result['minutes']:.1f} min\n")
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| first scan served after, s | {result['first_scan_served_seconds']:.0f} |")
    print(f"| RSS once the first scan is served, MiB | {result['first_scan_rss_mib']:.1f} |")
    print(f"| maximum RSS, MiB | {result['max_rss_mib']:.1f} |")
    print(f"| RSS at the end, MiB | {result['end_rss_mib']:.1f} |")
    print(f"| drift over the second half (least squares), MiB/hour | {result['drift_mib_per_hour']:+.2f} |")
    print(f"| collectors failing at the end | {', '.join(result['failing_at_end']) or 'none'} |")
    for name, seen in result["pass_seconds"].items():
        later = sorted(seen[1:])
        median = f"{later[len(later) // 2]:.2f}" if later else "-"
        print(f"| {name} pass: first / median of the {len(later)} later, s | {seen[0] if seen else '-'} / {median} |")


if __name__ == "__main__":
    main()
