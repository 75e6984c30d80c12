"""Every benchmark at a small size, one table: what `make bench` runs.

    .venv/bin/python bench/run.py [--blobs 20000] [--repos 1000] [--scrapes 200] [--cpu-minutes 0.5]
                                  [--workload-minutes 0.5] [--soak-minutes 3] [--dir /var/tmp] [--keep]

Steps: (1) bench/garbage.py's ``generate`` makes a synthetic store of ``--blobs`` blobs, a
twentieth of them manifests, in ``--repos`` repositories, in a fresh directory under ``--dir``;
(2) bench/storage_scan.py times full and incremental scans on it against ``du -s`` (warm) and
measures memory; (3) bench/garbage.py times the reclaimable-space estimate, first and after
1 % new pushes; (4) bench/workload.py runs the exporter with and without the workload
collector on a request log; (5) bench/scrape.py scrapes this exporter, with the store attached
and its per-repository series (``dtr_repository_*``) served, and Debian's
prometheus-node-exporter, in the same run; (6) bench/soak.py runs `serve` with everything on,
rescanning every 30 s while the store grows. Each step adds blobs to the store. Prints one
Markdown table and how long it took: about ten minutes on a 2-core machine with the defaults.
docs/performance.md's figures come from the scripts' own flags on bigger stores, and the
curves from bench/curves.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from garbage import generate  # noqa: E402

OURS, NODE = "dtr-sizing-exporter", "node_exporter 1.5 (Debian)"
Row = tuple[str, str, str, str]


def run(script: str, *args: str, as_json: bool = True):
    """A benchmark script's --json figures (its last stdout line), or its whole stdout (scripts without
    --json); its progress goes to stderr as it runs."""
    started = time.monotonic()
    print(f"bench/run.py: {script} {' '.join(args)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(HERE / script), *args, *(["--json"] if as_json else [])],
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"bench/run.py: {script} exited {done.returncode}")
    print(f"bench/run.py: {script} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1]) if as_json else done.stdout


def storage_rows(scan: dict) -> list[Row]:
    rows = [("storage scan", f"{step} ({what}), s", f"{ours:.3f}", f"{du:.3f} (du -s)")
            for step, what, ours, du in scan["steps"]]
    mem, whole = scan["collector"], scan["exporter"]
    rows.append(("storage scan", "storage collector alone: peak RSS over idle, MiB",
                 f"{(mem['peak_rss'] - mem['idle_rss']) / 2**20:.1f}", "-"))
    rows.append(("storage scan", "whole exporter with the store: peak RSS, MiB",
                 f"{whole['peak_mib']:.1f}", f"{whole['idle_peak_mib']:.1f} (empty store)"))
    rows.append(("storage scan", "whole exporter: first scan served after, s",
                 f"{whole['first_scan_served_seconds']:.1f}", "-"))
    return rows


def garbage_rows(text: str) -> list[Row]:
    """From bench/garbage.py's printed lines (it has no --json)."""
    def seconds(label: str) -> str:
        return re.search(rf"^{re.escape(label)}: ([0-9.]+) s", text, re.M).group(1)
    grown = re.search(r"\+(-?\d+) KiB after the second", text).group(1)
    same = re.search(r"incremental equals from scratch: (\w+)", text).group(1)
    return [("garbage", "first estimate, s", seconds("first estimate"), seconds("du -s") + " (du -s)"),
            ("garbage", "estimate after +1 % pushes, s", seconds("second estimate (1 % new pushes)"), "-"),
            ("garbage", "RSS growth over both estimates, MiB", f"{int(grown) / 1024:.1f}", "-"),
            ("garbage", "incremental equals from scratch", same, "-")]


def workload_rows(text: str) -> list[Row]:
    """From bench/workload.py's Markdown tables (it has no --json)."""
    def cells(first: str) -> list[str]:
        line = next(x for x in text.splitlines() if x.startswith(f"| {first} |"))
        return [c.strip().strip("*") for c in line.strip("|").split("|")][1:]
    with_, without, diff = cells("with workload"), cells("without workload"), cells("**difference**")
    rows = [("workload", "serve: median RSS with the workload collector, MiB", with_[0], without[0] + " (without)"),
            ("workload", "serve: RSS added by the workload collector, MiB", diff[0], "-"),
            ("workload", "serve: % of one core added by it", diff[2], "-")]
    for method in ("log, first pass (day's log backlog)", "log, steady pass (+60 s of log)", "atime walk (relatime)"):
        rows.append(("workload", f"hot set: {method}, s", cells(method)[0], "-"))
    return rows


def soak_rows(soak: dict) -> list[Row]:
    what = f"{soak['minutes']:.0f} min, rescans every {soak['interval_seconds']:g} s"
    return [("soak", "serve, everything on: RSS once the first scan is served, MiB",
             f"{soak['first_scan_rss_mib']:.1f}", "40 (goal at 1M blobs)"),
            ("soak", f"maximum RSS ({what}), MiB", f"{soak['max_rss_mib']:.1f}", "-"),
            ("soak", f"RSS drift over the second half ({what}), MiB/hour", f"{soak['drift_mib_per_hour']:+.1f}",
             "0 (steady)")]


def scrape_rows(scrape: dict) -> list[Row]:
    ours, node = scrape["exporters"][OURS], scrape["exporters"][NODE]
    measures = (("median", "median scrape, ms", "{:.2f}"), ("p99", "p99 scrape, ms", "{:.2f}"),
                ("bytes", "body bytes (uncompressed)", "{}"), ("rss", "RSS after the scrapes, MiB", "{:.1f}"),
                ("cpu_h", f"CPU s/hour (a scrape every 15 s, {scrape['cpu_minutes']:.1f} min)", "{:.1f}"))
    return [("scrape", f"{label} ({scrape['scrapes']} scrapes)" if key in ("median", "p99") else label,
             form.format(ours[key]), form.format(node[key]) + " (node_exporter)") for key, label, form in measures]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blobs", type=int, default=20000, help="blobs in the synthetic store (default 20000)")
    p.add_argument("--repos", type=int, default=1000, help="repositories in it (default 1000)")
    p.add_argument("--scrapes", type=int, default=200, help="timed scrapes of each exporter (default 200)")
    p.add_argument("--cpu-minutes", type=float, default=0.5, help="CPU measuring window (default 0.5)")
    p.add_argument("--workload-minutes", type=float, default=0.5, help="workload steady window (default 0.5)")
    p.add_argument("--soak-minutes", type=float, default=3, help="soak window (default 3)")
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the store is made (not a tmpfs)")
    p.add_argument("--keep", action="store_true", help="keep the generated store")
    args = p.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dtr-bench-", dir=args.dir))
    store = work / "store"
    manifests = args.blobs // 20
    try:
        generate(store / "docker/registry/v2", args.blobs, manifests, args.repos, "base")
        rows = storage_rows(run("storage_scan.py", str(store)))
        state = work / "garbage-state"
        state.mkdir()
        rows += garbage_rows(run("garbage.py", str(store), str(args.blobs), str(manifests), "--repos",
                                 str(args.repos), "--state-dir", str(state), as_json=False))
        # generate() names the layer blobs as workload.py's hot set expects: the first blobs - manifests
        rows += workload_rows(run("workload.py", str(store), "--blobs", str(args.blobs - manifests), "--rate", "0.5",
                                  "--minutes", str(args.workload_minutes), as_json=False))
        rows += scrape_rows(run("scrape.py", "--storage.path", str(store), "--scrapes", str(args.scrapes),
                                "--cpu-minutes", str(args.cpu_minutes), "--wait-for", "dtr_repository_bytes{"))
        rows += soak_rows(run("soak.py", str(store), "--minutes", str(args.soak_minutes), "--interval", "30",
                              "--repos", str(args.repos)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    took = (time.monotonic() - started) / 60
    print(f"\nsynthetic store of {args.blobs} blobs, {manifests} manifests in {args.repos} repositories (warm cache)"
          + (f", kept in {store}" if args.keep else "") + f"; the whole run took {took:.1f} min\n")
    print("| benchmark | measure | dtr-sizing-exporter | reference |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
