"""Every benchmark at a small size, one table: what `make bench` runs.

    .venv/bin/python bench/run.py [--blobs 20000] [--scrapes 200] [--cpu-minutes 0.5] [--dir /var/tmp] [--keep]

Steps: (1) bench/storage_generate.py makes a synthetic store of ``--blobs`` blobs in a fresh
directory under ``--dir``; (2) bench/storage_scan.py times full and incremental scans on it
against ``du -s`` (warm) and measures memory; (3) bench/scrape.py scrapes this exporter, with
the store attached, and Debian's prometheus-node-exporter. Prints one Markdown table. The
defaults take two to three minutes on a 2-core machine; docs/performance.md's figures come
from ``--blobs 1000000 --scrapes 1000 --cpu-minutes 5`` and the scripts' own flags.
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

HERE = Path(__file__).resolve().parent
OURS, NODE = "dtr-sizing-exporter", "node_exporter 1.5 (Debian)"


def run(script: str, *args: str) -> dict:
    """A benchmark script's --json figures (its last stdout line); its progress goes to stderr as it runs."""
    started = time.monotonic()
    print(f"bench/run.py: {script} {' '.join(args)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(HERE / script), *args, "--json"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"bench/run.py: {script} exited {done.returncode}")
    print(f"bench/run.py: {script} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def storage_rows(scan: dict) -> list[tuple[str, str, str, str]]:
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


def scrape_rows(scrape: dict) -> list[tuple[str, str, str, str]]:
    ours, node = scrape["exporters"][OURS], scrape["exporters"][NODE]
    measures = (("median", "median scrape, ms", "{:.2f}"), ("p99", "p99 scrape, ms", "{:.2f}"),
                ("bytes", "body bytes (uncompressed)", "{}"), ("rss", "RSS after the scrapes, MiB", "{:.1f}"),
                ("cpu_h", f"CPU s/hour (a scrape every 15 s, {scrape['cpu_minutes']:.1f} min)", "{:.1f}"))
    return [("scrape", f"{label} ({scrape['scrapes']} scrapes)" if key in ("median", "p99") else label,
             form.format(ours[key]), form.format(node[key]) + " (node_exporter)") for key, label, form in measures]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blobs", type=int, default=20000, help="blobs in the synthetic store (default 20000)")
    p.add_argument("--scrapes", type=int, default=200, help="timed scrapes of each exporter (default 200)")
    p.add_argument("--cpu-minutes", type=float, default=0.5, help="CPU measuring window (default 0.5)")
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where the store is made (not a tmpfs)")
    p.add_argument("--keep", action="store_true", help="keep the generated store")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dtr-bench-", dir=args.dir))
    store = work / "store"
    try:
        subprocess.run([sys.executable, str(HERE / "storage_generate.py"), str(store), str(args.blobs)],
                       check=True, stdout=subprocess.DEVNULL)
        rows = storage_rows(run("storage_scan.py", str(store)))
        rows += scrape_rows(run("scrape.py", "--storage.path", str(store), "--scrapes", str(args.scrapes),
                                "--cpu-minutes", str(args.cpu_minutes)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nsynthetic store of {args.blobs} blobs (warm cache)" + (f", kept in {store}" if args.keep else "") + "\n")
    print("| benchmark | measure | dtr-sizing-exporter | reference |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
