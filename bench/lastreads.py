"""What the hot set's last-read table costs: reads noted a second, one measure, resident growth.

    .venv/bin/python bench/lastreads.py [--digests 150000] [--reads 600000] [--module FILE]

``--digests`` distinct blobs read over the day (150,000: 5 % of a 3M-blob store, as the soak's
log), ``--reads`` reads noted in time order, five a second; then one measure (prune, the
1 h and 24 h windows). VmRSS growth from before the table is made, after ``malloc_trim``.
``--module``: another hotset.py to time instead (an earlier commit's, from
``git show COMMIT:exporter/hotset.py``) in the same sitting.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.util
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def load(path: Path | None):
    if path is None:
        from exporter import hotset
        return hotset
    source = path.read_text().replace("from .accesslog", "from exporter.accesslog")
    spec = importlib.util.spec_from_loader("hotset_other", loader=None)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--digests", type=int, default=150_000)
    p.add_argument("--reads", type=int, default=600_000)
    p.add_argument("--module", type=Path, help="another hotset.py to measure")
    args = p.parse_args()
    hotset = load(args.module)
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(args.digests)]
    rnd, start = random.Random(1), 1_796_378_292
    reads = [(rnd.choice(digests), start + i // 5) for i in range(args.reads)]
    before = rss_mib()
    table = hotset.LastReads(Path("/nonexistent"))  # no store: every size a failed stat, as cheap as a real one
    began = time.perf_counter()
    for digest, when in reads:
        table.note(digest, when)
    noting = time.perf_counter() - began
    now = reads[-1][1]
    began = time.perf_counter()
    table.prune(now)
    hour, day = table.window(now, 3600), table.window(now, 86400)
    measuring = time.perf_counter() - began
    ctypes.CDLL(None).malloc_trim(0)  # as serve does after a long run: what stays is what is kept
    print(f"{args.module or 'exporter/hotset.py'}: {args.reads / noting / 1000:.0f}k reads noted a second, "
          f"measure {measuring * 1000:.1f} ms, RSS +{rss_mib() - before:.1f} MiB "
          f"(distinct read in 1 h / 24 h: {hour[1] or hour[0].blobs} / {day[1] or day[0].blobs})")


if __name__ == "__main__":
    main()
