"""What the workload collector costs: the exporter with and without it, and one pass of each hot-set method.

    .venv/bin/python bench/workload.py /var/tmp/store-1m [--blobs 1000000] [--hot 0.05] [--rate 2] [--minutes 5]

The store is one bench/storage_generate.py made (its first ``--blobs`` digests are known
from the generator's seed, so the hot set is picked without listing the store). Steps:
(1) a day of registry request log next to the store (``registry.log``), in Distribution's
text format (an app ``response completed`` line and an access line per request): blob GETs
at ``--rate`` a second spread over a hot set of ``--hot`` of the blobs, plus a manifest GET
and a ``/v2/`` ping per four blob GETs; (2) two real exporters (``serve``, default collectors
and intervals, ``--storage.path`` and ``--registry.log-path``), one with
``--no-collector.workload``, run side by side while the log keeps growing at the same rate;
once both have served their first scan and the hot set, resident memory (VmRSS) is sampled
every 10 s and CPU (utime+stime) taken over ``--minutes``, with a scrape every 15 s;
(3) in this process: one log-method pass over the day's log (the first, which reads the
last 64 MiB of it, timed and then run again under tracemalloc for its memory; a steady
one a minute of log later) and one atime-method pass over the store, after giving the hot
blobs an mtime three days old and an atime within the last day, as a relatime mount leaves
blobs read since.
Prints a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scrape import cpu_seconds, free_port, rss_mib, wait_up  # noqa: E402

from exporter import hotset  # noqa: E402

REPOS = 200  # as bench/storage_generate.py names them


def hot_digests(blobs: int, share: float, seed: int = 12) -> list[str]:
    picked = random.Random(seed).sample(range(blobs), int(blobs * share))
    return [hashlib.sha256(f"base-{i}".encode()).hexdigest() for i in picked]


def request_lines(rnd: random.Random, hot: list[str], when: float) -> list[str]:
    """One request's two lines (app, access) as docker-registry 2.8 writes them."""
    kind = rnd.random()
    repo = f"team{rnd.randrange(REPOS) % 10}/app{rnd.randrange(REPOS)}"
    if kind < 0.8:
        uri, status, written, ctype = f"/v2/{repo}/blobs/sha256:{rnd.choice(hot)}", 200, rnd.randrange(1 << 10, 1 << 26), \
            "application/octet-stream"
    elif kind < 0.9:
        uri, status, written, ctype = f"/v2/{repo}/manifests/latest", 200, 1578, \
            "application/vnd.docker.distribution.manifest.v2+json"
    else:
        uri, status, written, ctype = "/v2/", 200, 2, "application/json; charset=utf-8"
    t = datetime.fromtimestamp(when, timezone.utc)
    iso = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}123Z"
    peer = f"10.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
    app = (f'time="{iso}" level=info msg="response completed" go.version=go1.19.8 '
           f'http.request.host="registry.example.com" http.request.id={rnd.getrandbits(128):032x} '
           f'http.request.method=GET http.request.remoteaddr="{peer}:{rnd.randrange(30000, 60000)}" '
           f'http.request.uri="{uri}" http.request.useragent="docker/24.0.7 go/go1.20.10 git-commit/311b9ff '
           f'kernel/6.1.0 os/linux arch/amd64" http.response.contenttype="{ctype}" '
           f'http.response.duration={rnd.uniform(0.5, 900):.6f}ms http.response.status={status} '
           f'http.response.written={written}')
    access = (f'{peer} - - [{t.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET {uri} HTTP/1.1" {status} {written} "" '
              '"docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64"')
    return [app, access]


def write_day(log: Path, hot: list[str], rate: float, now: float) -> int:
    """A day of requests ending at ``now``: blob GETs at ``rate`` a second (all requests at rate / 0.8)."""
    rnd = random.Random(7)
    requests_per_day = int(86400 * rate / 0.8)
    step = 86400 / requests_per_day
    with log.open("w") as f:
        for n in range(requests_per_day):
            f.write("\n".join(request_lines(rnd, hot, now - 86400 + n * step)) + "\n")
    return requests_per_day


class Appender(threading.Thread):
    """Keeps the log growing at the day's rate, a batch a second, as a live registry does."""

    def __init__(self, log: Path, hot: list[str], rate: float):
        super().__init__(daemon=True)
        self.log, self.hot, self.per_second = log, hot, rate / 0.8
        self.stop = threading.Event()

    def run(self) -> None:
        rnd, owed = random.Random(9), 0.0
        while not self.stop.wait(1.0):
            owed += self.per_second
            batch = [line for _ in range(int(owed)) for line in request_lines(rnd, self.hot, time.time())]
            owed -= int(owed)
            with self.log.open("a") as f:
                f.write("".join(line + "\n" for line in batch))


def metric(text: str, name: str) -> str | None:
    return next((line for line in text.splitlines() if line.startswith(name)), None)


def serve_both(store: Path, log: Path, minutes: float) -> dict[str, dict]:
    variants = {"without workload": ["--no-collector.workload"], "with workload": []}
    procs, urls = {}, {}
    for name, extra in variants.items():
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             f"--storage.path={store}", f"--registry.log-path={log}", *extra], cwd=ROOT, stderr=subprocess.DEVNULL)
    rows: dict[str, dict] = {name: {"rss": []} for name in variants}
    try:
        started = time.monotonic()
        for name, proc in procs.items():
            wait_up(urls[name] + "/-/ready", proc, 3600)
            wanted = ["dtr_storage_blobs{"] + (["dtr_storage_hot_bytes{"] if name == "with workload" else [])
            while not all(metric(requests.get(urls[name] + "/metrics", timeout=10).text, w) for w in wanted):
                time.sleep(2)
        print(f"first scans and hot set served after {time.monotonic() - started:.0f} s", file=sys.stderr)
        time.sleep(20)  # let the first scans' temporaries be trimmed
        before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        started, tick = time.monotonic(), 0
        while time.monotonic() - started < minutes * 60:
            for name, proc in procs.items():
                rows[name]["rss"].append(rss_mib(proc.pid))
                if tick % 3 == 0:  # a scrape every 15 s, as Prometheus
                    rows[name]["body"] = requests.get(urls[name] + "/metrics", timeout=10).text
            tick += 1
            time.sleep(5)
        span = time.monotonic() - started
        for name, proc in procs.items():
            rows[name]["cpu_pct"] = (cpu_seconds(proc.pid) - before[name]) / span * 100
            rows[name]["span"] = span
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
    return rows


def timed(what):
    start = time.perf_counter()
    result = what()
    return time.perf_counter() - start, result


def allocated(what) -> tuple[int, int]:
    """(bytes ``what`` leaves allocated, peak bytes allocated during it), from tracemalloc (which slows it)."""
    tracemalloc.start()
    keep = what()
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del keep
    return kept, peak


def passes(v2: Path, log: Path, hot: list[str], rate: float) -> dict[str, tuple]:
    source = hotset.HotSetSource(v2, log)
    first = timed(source.measure)
    first += allocated(lambda: [s := hotset.HotSetSource(v2, log), s.measure()])
    appender = Appender(log, hot, rate)
    appender.start()
    time.sleep(60)  # the collector's default interval
    appender.stop.set()
    appender.join()
    steady = timed(source.measure)  # what one more minute of log costs, the table already built
    rnd, now = random.Random(3), time.time()
    for hexa in hot:  # written three days ago, read within the last day, as relatime leaves them
        data = os.path.join(v2, "blobs/sha256", hexa[:2], hexa, "data")
        os.utime(data, (now - rnd.uniform(0, 86000), now - 3 * 86400))
    walk = timed(lambda: hotset.atime_hot(v2, time.time(), strict=False))
    return {"log, first pass (day's log backlog)": first, "log, steady pass (+60 s of log)": (*steady, 0, 0),
            "atime walk (relatime)": (*walk, 0, 0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path, help="a store bench/storage_generate.py made")
    p.add_argument("--blobs", type=int, default=1_000_000, help="the count it was generated with")
    p.add_argument("--hot", type=float, default=0.05, help="share of the blobs the log reads")
    p.add_argument("--rate", type=float, default=2.0, help="blob GETs a second")
    p.add_argument("--minutes", type=float, default=5.0, help="steady-state window of the two exporters")
    args = p.parse_args()
    v2 = args.store / "docker/registry/v2"
    log = args.store / "registry.log"
    hot = hot_digests(args.blobs, args.hot)
    t0 = time.monotonic()
    count = write_day(log, hot, args.rate, time.time())
    print(f"log: {count} requests over 24 h, {log.stat().st_size >> 20} MiB, {len(hot)} hot blobs "
          f"({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    appender = Appender(log, hot, args.rate)
    appender.start()
    rows = serve_both(args.store, log, args.minutes)
    appender.stop.set()
    appender.join()
    methods = passes(v2, log, hot, args.rate)

    print(f"\nstore {args.store}: {args.blobs} blobs, hot set {len(hot)} blobs; log {count} requests a day "
          f"({args.rate:g} blob GETs/s), growing at that rate; {rows['with workload']['span'] / 60:.1f} min "
          "of steady state\n")
    print("| exporter | RSS MiB (median of samples) | RSS MiB at end | % of one core |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in rows.items():
        print(f"| {name} | {statistics.median(r['rss']):.1f} | {r['rss'][-1]:.1f} | {r['cpu_pct']:.3f} |")
    a, b = rows["with workload"], rows["without workload"]
    print(f"| **difference** | **{statistics.median(a['rss']) - statistics.median(b['rss']):+.1f}** "
          f"| {a['rss'][-1] - b['rss'][-1]:+.1f} | **{a['cpu_pct'] - b['cpu_pct']:+.3f}** |")
    for line in a["body"].splitlines():
        if line.startswith(("dtr_storage_hot_", 'dtr_exporter_collector_duration_seconds{collector="workload"}')):
            print(f"    {line}")
    print("\n| method pass | seconds | hot set 1h / 24h blobs | MiB kept (tracemalloc) | MiB peak (tracemalloc) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (seconds, hs, kept, peak) in methods.items():
        windows = hs if isinstance(hs, dict) else hs.windows
        blobs = " / ".join(str(windows[w].blobs) if w in windows else "-" for w in ("1h", "24h"))
        print(f"| {name} | {seconds:.3f} | {blobs} | {kept / 2**20:.2f} | {peak / 2**20:.2f} |")


if __name__ == "__main__":
    main()
