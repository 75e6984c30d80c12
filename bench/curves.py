"""Cost curves: scan, rescan, garbage estimate and resident memory against store size, fitted and extrapolated.

    .venv/bin/python bench/curves.py [--sizes 100000,1000000,3000000] [--store 1000000=/var/tmp/store-1m ...]
                                     [--repos 10000] [--dir /var/tmp] [--no-cold] [--runs 3] [--keep] [--json]
                                     [--merge earlier.json ...]

For each size: a store of that many blobs, blobs/20 of them manifests, in ``--repos``
repositories (bench/garbage.py's ``generate``, under ``--dir``, removed afterwards unless
``--keep``), or the existing store ``--store SIZE=PATH`` names (made the same way; never
removed). The sizes are ``--sizes`` and those of ``--store``; with only ``--store``, its
sizes alone. On it, in this order: bench/storage_scan.py warm, then ``--cold`` (caches dropped:
root; skipped with ``--no-cold``): full scan vs ``du -s``, rescan after 1 % new blobs, the
exporter's RSS; bench/garbage.py: first estimate and the one after 1 % new pushes, RSS
growth; bench/soak.py for two minutes: `serve` with every collector on (garbage and
workload included), RSS once its first scan is served and the maximum. Each step adds
blobs to the store, so later steps see up to 3 % more than the nominal size.

Prints a Markdown table per measure: one column per size, then the fit over the sizes
(times: least squares in log-log, ``t = a·N^b``; memory: linear, ``a + b·N``, a fixed base
plus a cost per blob) and its value at 10M blobs, marked *extrapolated* unless 10M was
measured. ``--json``: one JSON object. ``--merge FILE``: add the sizes an earlier
``--json`` run measured (one size per run fits a long benchmark into separate sittings),
nothing measured again. Prints how long the whole run took.
"""

from __future__ import annotations

import argparse
import json
import math
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

TARGET = 10_000_000


def step(script: str, *args: str, parse=json.loads) -> dict:
    """Run a bench script; its stdout parsed by ``parse`` (its last line as JSON by default)."""
    started = time.monotonic()
    print(f"bench/curves.py: {script} {' '.join(args)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"bench/curves.py: {script} exited {done.returncode}")
    print(f"bench/curves.py: {script} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return parse(done.stdout.strip().splitlines()[-1]) if parse is json.loads else parse(done.stdout)


def garbage_figures(text: str) -> dict:
    """bench/garbage.py's printed lines as figures (it has no --json)."""
    def seconds(label: str) -> float:
        return float(re.search(rf"^{re.escape(label)}: ([0-9.]+) s", text, re.M).group(1))
    rss = re.search(r"RSS: (\d+) KiB before, \+(-?\d+) KiB after the first estimate, \+(-?\d+) KiB", text)
    return {"du": seconds("du -s"), "first": seconds("first estimate"),
            "second": seconds("second estimate (1 % new pushes)"),
            "rss_first_mib": int(rss.group(2)) / 1024, "rss_second_mib": int(rss.group(3)) / 1024}


def scan_figures(scan: dict, mode: str) -> dict:
    steps = {name: (ours, du) for name, _, ours, du in scan["steps"]}
    return {"full": steps[f"full scan, {mode}"][0], "full_du": steps[f"full scan, {mode}"][1],
            "rescan": steps["incremental rescan after +1 %"][0], "rescan_du": steps["incremental rescan after +1 %"][1],
            "exporter_rss": scan["exporter"]["rss_mib"], "exporter_peak": scan["exporter"]["peak_mib"]}


def measure(size: int, store: Path, work: Path, cold: bool, runs: int) -> dict:
    out = {"warm": scan_figures(step("storage_scan.py", str(store), "--runs", str(runs), "--json"), "warm")}
    if cold:
        out["cold"] = scan_figures(step("storage_scan.py", str(store), "--cold", "--runs", str(runs), "--json"),
                                   "cold")
    state = work / f"garbage-state-{size}"
    state.mkdir(exist_ok=True)
    out["garbage"] = step("garbage.py", str(store), str(size), str(size // 20), "--state-dir", str(state),
                          parse=garbage_figures)
    out["serve"] = step("soak.py", str(store), "--minutes", "2", "--json")
    return out


def fit(points: list[tuple[float, float]], log: bool) -> tuple[float, float] | None:
    """Least squares: (a, b) of y = a·x^b (log) or y = a + b·x; None with fewer than two points."""
    pts = [(math.log(x), math.log(y)) for x, y in points if y > 0] if log else points
    if len(pts) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    var = sum((x - mx) ** 2 for x, _ in pts)
    if not var:
        return None
    b = sum((x - mx) * (y - my) for x, y in pts) / var
    a = my - b * mx
    return (math.exp(a), b) if log else (a, b)


def at(coef: tuple[float, float], n: float, log: bool) -> float:
    a, b = coef
    return a * n ** b if log else a + b * n


# measure label, unit, where in a size's figures, log-log fit (times) or linear (memory)
MEASURES = (
    ("full scan, warm", "s", lambda r: r["warm"]["full"], True),
    ("du -s, warm", "s", lambda r: r["warm"]["full_du"], True),
    ("full scan, cold", "s", lambda r: r.get("cold", {}).get("full"), True),
    ("du -s, cold", "s", lambda r: r.get("cold", {}).get("full_du"), True),
    ("rescan after +1 %, warm", "s", lambda r: r["warm"]["rescan"], True),
    ("du -s after +1 %, warm", "s", lambda r: r["warm"]["rescan_du"], True),
    ("garbage estimate, first", "s", lambda r: r["garbage"]["first"], True),
    ("garbage estimate after +1 % pushes", "s", lambda r: r["garbage"]["second"], True),
    ("garbage estimator: RSS growth after two passes", "MiB", lambda r: r["garbage"]["rss_second_mib"], False),
    ("exporter, default collectors: RSS after the first scan", "MiB", lambda r: r["warm"]["exporter_rss"], False),
    ("serve, everything on: RSS once the first scan is served", "MiB", lambda r: r["serve"]["first_scan_rss_mib"],
     False),
    ("serve, everything on: maximum RSS over 2 min of rescans", "MiB", lambda r: r["serve"]["max_rss_mib"], False),
)


def table(results: dict[int, dict]) -> str:
    sizes = sorted(results)
    lines = []
    for label, unit, get, log in MEASURES:
        points = [(n, get(results[n])) for n in sizes if get(results[n]) is not None]
        if not points:
            continue
        coef = fit(points, log)
        lines.append(f"\n**{label}** ({unit})\n")
        lines.append("| " + " | ".join([*(f"{n:,} blobs" for n in sizes), "fit", f"{TARGET:,} blobs"]) + " |")
        lines.append("| " + " | ".join(["---:"] * (len(sizes) + 2)) + " |")
        cells = [f"{get(results[n]):.3f}" if get(results[n]) is not None else "-" for n in sizes]
        if TARGET in results:
            form, tenm = "-", cells[sizes.index(TARGET)]
        elif coef is None:
            form, tenm = "-", "-"
        else:
            form = f"{coef[0]:.3g}·N^{coef[1]:.2f}" if log else f"{coef[0]:.1f} + {coef[1] * 1e6:.2f}·N/1M"
            tenm = f"{at(coef, TARGET, log):.3f} (extrapolated)"
        lines.append("| " + " | ".join([*cells, form, tenm]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", help="blob counts to generate, comma separated (default 100000,1000000,3000000, "
                   "none when --store or --merge is given)")
    p.add_argument("--store", action="append", default=[], metavar="SIZE=PATH",
                   help="use this existing store for SIZE instead of generating one (repeatable)")
    p.add_argument("--repos", type=int, default=10_000, help="repositories in generated stores (default 10000)")
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where stores are generated (not a tmpfs)")
    p.add_argument("--no-cold", dest="cold", action="store_false", help="skip the cold (caches dropped) scans")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each full scan, the best counts (default 3)")
    p.add_argument("--keep", action="store_true", help="keep the generated stores")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--merge", action="append", default=[], type=Path, metavar="FILE",
                   help="an earlier run's --json output: its sizes join the table (repeatable)")
    args = p.parse_args()
    given = {}
    for item in args.store:
        size, _, path = item.partition("=")
        if not size.isdigit() or not path:
            p.error(f"--store: give SIZE=PATH, not {item!r}")
        given[int(size)] = Path(path)
    default = "" if given or args.merge else "100000,1000000,3000000"
    try:
        sizes = sorted({*given, *(int(s) for s in (args.sizes or default).split(",") if s)})
    except ValueError:
        p.error(f"--sizes: give blob counts separated by commas, not {args.sizes!r}")
    earlier = {}
    for path in args.merge:
        try:
            earlier.update({int(n): r for n, r in json.loads(path.read_text())["results"].items()})
        except (OSError, ValueError, KeyError) as err:
            p.error(f"--merge: {path} is not a bench/curves.py --json output ({err})")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="curves-", dir=args.dir))
    results = {}
    try:
        for size in sizes:
            store = given.get(size)
            if store is None:
                store = work / f"store-{size}"
                t = time.monotonic()
                generate(store / "docker/registry/v2", size, size // 20, args.repos, "base")
                print(f"bench/curves.py: generated {size} blobs in {time.monotonic() - t:.0f} s", file=sys.stderr,
                      flush=True)
            results[size] = measure(size, store, work, args.cold, args.runs)
            if store not in given.values() and not args.keep:
                shutil.rmtree(store, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    results = {**earlier, **results}
    sizes = sorted(results)
    if args.json:
        print(json.dumps({"seconds": took, "results": results}))
        return
    print(f"\ncost curves over {', '.join(f'{n:,}' for n in sizes)} blobs ({args.repos} repositories, blobs/20 "
          f"manifests; warm unless marked cold); fits by least squares; run took {took / 60:.1f} min")
    print(table(results))


if __name__ == "__main__":
    main()
