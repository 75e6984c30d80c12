"""A progress line on a terminal while ``check`` waits for a first scan of a large store."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Iterator

EVERY = 0.5  # seconds between updates
DELAY = 1.0  # small stores finish before the line would appear


@contextlib.contextmanager
def shown(sampler, stream=None) -> Iterator[None]:
    """While the block runs, rewrite one stderr line with each scanning collector's ``progress``."""
    stream = stream or sys.stderr
    scanners = {n: job.collector for n, job in sampler.jobs.items() if hasattr(job.collector, "progress")}
    if not scanners or not stream.isatty():
        yield
        return
    done = threading.Event()

    def report() -> None:
        if done.wait(DELAY):
            return
        while not done.is_set():
            counts = ", ".join(f"{n}: {c.progress:,} entries examined" for n, c in scanners.items())
            stream.write(f"\rscanning the image store ({counts}) ...\033[K")
            stream.flush()
            done.wait(EVERY)
        stream.write("\r\033[K")
        stream.flush()

    thread = threading.Thread(target=report, name="scan-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
