"""Scrape benchmark: this exporter against Debian's prometheus-node-exporter, in one run.

    .venv/bin/python bench/scrape.py [--storage.path /var/tmp/store-1m] [--scrapes 1000] [--cpu-minutes 5]
                                     [--exporter-arg=--no-collector.pagecache ...]

Both run on free loopback ports with their default collectors and intervals. Steps:
(1) warm-up, then ``--scrapes`` sequential scrapes of each over a keep-alive connection
with ``Accept-Encoding: gzip`` as Prometheus sends it: median and p99 latency;
(2) resident memory (VmRSS) of each after the scrapes; (3) CPU over ``--cpu-minutes``
with one scrape every 15 s (Prometheus' usual interval), from utime+stime in
/proc/PID/stat, extrapolated to seconds per hour and % of one core. With
``--storage.path`` the exporter waits for its first full storage scan (and whatever
``--wait-for`` names, such as the garbage collector's per-repository series) before
(1), and the CPU window includes its background rescans (every 300 s by default).
Prints a Markdown table for docs/performance.md (``--json``: one JSON object, for bench/run.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited {proc.returncode}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not come up")


def latencies(session: requests.Session, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        answer = session.get(url, timeout=30, headers={"Accept-Encoding": "gzip"})
        answer.raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.99) - 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--storage.path", dest="storage", help="attach this registry store to the exporter")
    p.add_argument("--scrapes", type=int, default=1000)
    p.add_argument("--cpu-minutes", type=float, default=5)
    p.add_argument("--exporter-arg", action="append", default=[], metavar="FLAG",
                   help="pass a flag to this exporter, e.g. --exporter-arg=--no-collector.pagecache")
    p.add_argument("--wait-for", action="append", default=[], metavar="TEXT",
                   help="with --storage.path, also wait until the exposition holds this (e.g. dtr_repository_bytes{, "
                        "once the first garbage estimate is served)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args()

    node_bin = shutil.which("prometheus-node-exporter") or sys.exit("install prometheus-node-exporter")
    ours_port, node_port = free_port(), free_port()
    ours_args = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{ours_port}", "--log.level=warn"]
    if args.storage:
        ours_args.append(f"--storage.path={args.storage}")
    ours_args += args.exporter_arg
    procs = {
        "dtr-sizing-exporter": subprocess.Popen(ours_args, cwd=ROOT, stderr=subprocess.DEVNULL),
        "node_exporter 1.5 (Debian)": subprocess.Popen(
            [node_bin, f"--web.listen-address=127.0.0.1:{node_port}"], stderr=subprocess.DEVNULL),
    }
    urls = {"dtr-sizing-exporter": f"http://127.0.0.1:{ours_port}/metrics",
            "node_exporter 1.5 (Debian)": f"http://127.0.0.1:{node_port}/metrics"}
    rows = {}
    try:
        wait_up(urls["dtr-sizing-exporter"].replace("/metrics", "/-/ready"), procs["dtr-sizing-exporter"], 3600)
        wait_up(urls["node_exporter 1.5 (Debian)"], procs["node_exporter 1.5 (Debian)"])
        if args.storage:  # the first full scan of a big store runs in the background: let it finish
            started = time.monotonic()
            wanted = ["dtr_storage_blobs{", *args.wait_for]
            while not all(w in requests.get(urls["dtr-sizing-exporter"], timeout=10).text for w in wanted):
                time.sleep(2)
            print(f"first storage scan done after {time.monotonic() - started:.0f} s", file=sys.stderr)
        for name, url in urls.items():
            with requests.Session() as session:
                latencies(session, url, 20)  # warm-up
                lat = latencies(session, url, args.scrapes)
                size = len(session.get(url, timeout=30).content)
            rows[name] = {"median": statistics.median(lat) * 1000, "p99": p99(lat) * 1000,
                          "bytes": size, "rss": rss_mib(procs[name].pid)}
        before = {name: cpu_seconds(proc.pid) for name, proc in procs.items()}
        started = time.monotonic()
        sessions = {name: requests.Session() for name in urls}
        while time.monotonic() - started < args.cpu_minutes * 60:
            tick = time.monotonic()
            for name, url in urls.items():
                sessions[name].get(url, timeout=30, headers={"Accept-Encoding": "gzip"}).raise_for_status()
            time.sleep(max(0.0, 15 - (time.monotonic() - tick)))
        span = time.monotonic() - started
        for name, proc in procs.items():
            used = cpu_seconds(proc.pid) - before[name]
            rows[name]["cpu_h"] = used / span * 3600
            rows[name]["cpu_pct"] = used / span * 100
            rows[name]["rss_end"] = rss_mib(proc.pid)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=15)

    if args.json:
        print(json.dumps({"scrapes": args.scrapes, "cpu_minutes": span / 60, "exporters": rows}))
        return
    store = (f", store {args.storage}" if args.storage else ", no store attached") + \
        "".join(f", {flag}" for flag in args.exporter_arg)
    print(f"\n{args.scrapes} scrapes each (gzip, keep-alive); CPU over {span / 60:.1f} min, a scrape every 15 s{store}\n")
    print("| exporter | median ms | p99 ms | body bytes (uncompressed) | RSS MiB after scrapes | RSS MiB at end "
          "| CPU s/hour | % of one core |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name} | {r['median']:.2f} | {r['p99']:.2f} | {r['bytes']} | {r['rss']:.1f} | {r['rss_end']:.1f} "
              f"| {r['cpu_h']:.1f} | {r['cpu_pct']:.3f} |")


if __name__ == "__main__":
    main()
